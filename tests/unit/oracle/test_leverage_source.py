"""The Oracle's leverage source (issue #8's hedged-pair finding): once linked, max_jump_bps
x the source's highest max leverage may not exceed 10_000 x 10_000 (one push moves a price
at most the initial margin of a position at max leverage). Checked when linking and on every
set_config; the link can be replaced, never removed."""

import ape
import pytest

from perpool import params

BPS = 10_000
ZERO = "0x" + "00" * 20


@pytest.fixture
def source(project, deployer):
    s = deployer.deploy(project.TestLeverageSource)
    s.set_max_leverage_bps(500_000, sender=deployer)  # 50x: a 2 % margin
    return s


def config(**change):
    return {**params.ORACLE_CONFIG, **change}


def test_set_leverage_source__jump_at_the_margin__linked_and_logged(oracle, source, deployer):
    assert oracle.leverage_source() == ZERO  # unlinked after deployment
    oracle.set_config(config(max_jump_bps=200), sender=deployer)
    tx = oracle.set_leverage_source(source, sender=deployer)
    assert oracle.leverage_source() == source.address
    [log] = tx.decode_logs(oracle.LeverageSourceSet)
    assert log.source == source.address


def test_set_leverage_source__current_jump_above_the_margin__refused(oracle, source, deployer, snapshot):
    oracle.set_config(config(max_jump_bps=201), sender=deployer)
    before = (snapshot(oracle), oracle.leverage_source())
    with ape.reverts("oracle: jump above max leverage margin"):
        oracle.set_leverage_source(source, sender=deployer)
    assert (snapshot(oracle), oracle.leverage_source()) == before


@pytest.mark.parametrize("leverage, jump", [(500_000, 200), (1_000_000, 100), (25_000, 4_000), (30_000, 3_333)])
def test_set_config__linked__jump_up_to_the_margin_accepted_one_above_refused(
    oracle, source, deployer, snapshot, leverage, jump
):
    source.set_max_leverage_bps(leverage, sender=deployer)
    oracle.set_config(config(max_jump_bps=1), sender=deployer)
    oracle.set_leverage_source(source, sender=deployer)
    oracle.set_config(config(max_jump_bps=jump, max_window_move_bps=max(jump, 4_000)), sender=deployer)
    assert oracle.config().max_jump_bps == jump
    assert jump * leverage <= BPS * BPS < (jump + 1) * leverage
    before = snapshot(oracle)
    with ape.reverts("oracle: jump above max leverage margin"):
        oracle.set_config(config(max_jump_bps=jump + 1, max_window_move_bps=max(jump + 1, 4_000)), sender=deployer)
    assert snapshot(oracle) == before


def test_set_config__unlinked__jump_bounded_only_by_its_hard_limit(oracle, deployer):
    oracle.set_config(config(max_jump_bps=5_000, max_window_move_bps=9_000), sender=deployer)
    assert oracle.config().max_jump_bps == 5_000


def test_set_leverage_source__zero_address__refused(oracle, source, deployer, snapshot):
    oracle.set_leverage_source(source, sender=deployer)
    before = (snapshot(oracle), oracle.leverage_source())
    with ape.reverts("oracle: zero address"):
        oracle.set_leverage_source(ZERO, sender=deployer)
    assert (snapshot(oracle), oracle.leverage_source()) == before


@pytest.mark.parametrize("role", ["attacker", "keeper"])
def test_set_leverage_source__not_admin__refused(oracle, source, request, snapshot, role):
    sender = request.getfixturevalue(role)
    before = (snapshot(oracle), oracle.leverage_source())
    with ape.reverts("oracle: not admin"):
        oracle.set_leverage_source(source, sender=sender)
    assert (snapshot(oracle), oracle.leverage_source()) == before


def test_deployed_protocol__configurator_linked_at_the_default_bound(project, deployer, keeper, chain):
    """perpool.deploy links the Configurator: 50x markets and a 2 % jump, exactly the margin."""
    from perpool.deploy import deploy_protocol

    token = deployer.deploy(project.TestToken, "Test USD", "tUSD", 6)
    p = deploy_protocol(project, deployer, token, updaters=(keeper,), chain=chain)
    assert p.oracle.leverage_source() == p.configurator.address
    assert p.configurator.max_leverage_bps() == params.MARKET_CONFIG["max_leverage_bps"]
    assert p.oracle.config().max_jump_bps * p.configurator.max_leverage_bps() == BPS * BPS
    assert [p.configurator.listed(i) for i in range(len(p.markets))] == list(p.markets.values())
