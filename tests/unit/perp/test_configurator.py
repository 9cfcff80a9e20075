"""Configurator: roles, markets, pause, pnl factor, deleverager and admin transfer, and
Perp's setters that accept only the Configurator.

Ported from the Perp admin suite (the setters moved to contracts/Configurator.vy). Every
applied change is checked three ways: the Configurator's `configs` / `risk_configs`, its
decoded MarketConfigSet / RiskConfigSet events, and the packed words Perp stores and logs
(MarketConfigured), laid out as Perp.vy's constants say. The bounds of each setting are in
test_configurator_bounds.py.
"""

from __future__ import annotations

import ape
import pytest

from helpers import (
    NO_CUT_RISK,
    WAD,
    ZERO_ADDRESS,
    assert_refused,
    bps_of,
    config_of,
    fast_reverts,  # noqa: F401 (autouse fixture)
    indices_used,
    open_position,
    pin,
    push_fresh,
    risk_of,
    to_tokens,
    tokens_for,
)
from perpool import params
from perpool.events import settled as decode_settled

MICRO_USD = 10**12  # Perp stores USD settings in whole micro-dollars
# Configurator.vy's bounds used here (all of them: test_configurator_bounds.py)
MAX_POSITION_FEE_BPS = 100
MAX_RATE = WAD // 3_600 // 100  # borrowing factor, funding factor, max funding rate
MAX_PNL_FACTOR_BPS = 10_000
MAX_INSURANCE_CUT_BPS = 5_000
DEFAULT_MAX_PNL_FACTOR_BPS = 9_000  # Perp's constructor
ETH_PRICE = params.LOCAL_MARKETS["ETH"]
BTC_PRICE = params.LOCAL_MARKETS["BTC"]


@pytest.fixture(scope="module")
def new_admin(accounts):
    return accounts[7]


@pytest.fixture(scope="module")
def pauser(accounts):
    return accounts[9]


@pytest.fixture(scope="module")
def cfg():
    return dict(params.MARKET_CONFIG)


@pytest.fixture(scope="module")
def risk():
    return {k: list(v) if isinstance(v, list) else v for k, v in NO_CUT_RISK.items()}


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, deployer, attacker, new_admin, pauser, funded_trader, cfg, risk):
    """Module- and session-scoped fixtures first, so Ape's isolation never rebases."""


# ---------------------------------------------------------------- helpers


def from_contract(tx, event, contract) -> list:
    """Logs of `event` emitted by `contract` (Perp, Vault and the Configurator share some
    event signatures)."""
    return [log for log in tx.decode_logs(event) if log.contract_address == contract.address]


def tier_floor(first_threshold_micro_usd: int) -> int:
    """The highest set bit of the first tier's threshold (255 = no tiers): positions below
    2**floor micro-dollars never read the tier slot."""
    return 255 if first_threshold_micro_usd == 0 else first_threshold_micro_usd.bit_length() - 1


def packed(c: dict, r: dict, status: int = 0) -> tuple[int, int, int]:
    """Perp's packed words (_config_a, _config_b, _risk), per the layout in Perp.vy."""
    a = (
        c["max_leverage_bps"]
        | c["position_fee_bps"] << 24
        | c["reserve_factor_bps"] << 40
        | c["maintenance_margin_bps"] << 56
        | r["insurance_cut_bps"] << 72
        | r["max_pnl_factor_for_traders_bps"] << 88
        | r["liquidation_fee_bps"] << 104
        | c["min_collateral_usd"] // MICRO_USD << 120
        | c["min_maintenance_usd"] // MICRO_USD << 160
        | r["liquidation_fee_usd"] // MICRO_USD << 200
        | status << 240
        | tier_floor(r["tier_threshold_usd"][0] // MICRO_USD) << 248
    )
    b = (
        c["max_open_interest_usd"]
        | c["borrowing_factor"] << 112
        | c["funding_factor"] << 160
        | c["max_funding_rate"] << 208
    )
    tiers = zip(r["tier_threshold_usd"], r["tier_maintenance_bps"])
    words = sum((t // MICRO_USD | bps << 56) << (72 * i) for i, (t, bps) in enumerate(tiers))
    return a, b, words


def expect_applied(tx, env, market, c: dict, r: dict) -> None:
    """The Configurator recorded and logged `c` and `r`; Perp stored them packed."""
    conf = env.configurator
    assert config_of(conf, market) == c
    assert risk_of(conf, market) == r
    [m] = tx.decode_logs(conf.MarketConfigSet)
    assert m.market == market and {k: getattr(m, k) for k in c} == c
    [rl] = tx.decode_logs(conf.RiskConfigSet)
    assert rl.market == market
    assert {k: list(getattr(rl, k)) if k.startswith("tier") else getattr(rl, k) for k in r} == r
    [p] = tx.decode_logs(env.perp.MarketConfigured)
    assert p.market == market
    assert (p.config_a, p.config_b, p.risk) == packed(c, r)


def maintenance(c: dict, r: dict, size: int) -> int:
    """Perp._maintenance's NatSpec: the rate of the size's tier (base rate below the first
    threshold, a zero threshold ends the table) x size, rounded up, at least the floor."""
    bps = c["maintenance_margin_bps"]
    for threshold, tier_bps in zip(r["tier_threshold_usd"], r["tier_maintenance_bps"]):
        if threshold == 0 or size < threshold:
            break
        bps = tier_bps
    return max(bps_of(size, bps, True), c["min_maintenance_usd"])


def roles(env) -> tuple:
    c, v = env.configurator, env.vault
    return (c.perp(), c.pauser(), c.paused(), v.paused(), v.pauser(), env.perp.deleverager())


def refused(env, accounts, reason, call, *args, **kwargs) -> None:
    """assert_refused, also checking the roles state_of does not cover."""
    before = roles(env)
    assert_refused(env, accounts, reason, call, *args, **kwargs)
    assert roles(env) == before


def new_oracle_market(env, deployer, name="SOL") -> int:
    env.oracle.add_market(name, sender=deployer)
    return env.oracle.market_count()


# ---------------------------------------------------------------- deployment


def test_deploy__wires_perp_vault_roles_and_markets(env, deployer, cfg, risk):
    conf, perp = env.configurator, env.perp
    assert (conf.oracle(), conf.vault(), conf.perp()) == (
        env.oracle.address, env.vault.address, perp.address
    )
    assert perp.configurator() == conf.address
    assert (conf.admin(), conf.pending_admin(), conf.pauser()) == (
        deployer.address, ZERO_ADDRESS, ZERO_ADDRESS
    )
    assert not conf.paused() and not perp.paused() and not env.vault.paused()
    assert env.vault.pauser() == conf.address
    assert perp.deleverager() == env.risk.address
    assert perp.max_pnl_factor_bps() == DEFAULT_MAX_PNL_FACTOR_BPS
    for market in env.markets.values():
        assert perp.is_market(market) and perp.market_status(market) == 0
        assert config_of(conf, market) == cfg
        assert risk_of(conf, market) == risk


# ---------------------------------------------------------------- only the admin

ADMIN_CALLS = {
    "add_market": lambda env, cfg, risk: (3, cfg, risk),
    "set_market_config": lambda env, cfg, risk: (env.eth, cfg),
    "set_risk_config": lambda env, cfg, risk: (env.eth, risk),
    "set_max_pnl_factor": lambda env, cfg, risk: (5_000,),
    "set_deleverager": lambda env, cfg, risk: (env.keeper,),
    "set_pauser": lambda env, cfg, risk: (env.keeper,),
    "set_paused": lambda env, cfg, risk: (False,),
    "set_perp": lambda env, cfg, risk: (env.keeper,),
    "close_market": lambda env, cfg, risk: (env.eth,),
    "settle_market": lambda env, cfg, risk: (env.eth, ETH_PRICE),
    "transfer_admin": lambda env, cfg, risk: (env.keeper,),
}


@pytest.mark.parametrize("name", list(ADMIN_CALLS))
def test_admin_setters__non_admin__refused_not_admin(env, attacker, deployer, cfg, risk, name):
    new_oracle_market(env, deployer)  # market 3 exists in the Oracle: only the caller is wrong
    call = getattr(env.configurator, name)
    args = ADMIN_CALLS[name](env, cfg, risk)
    refused(env, (attacker,), "config: not admin", call, *args, sender=attacker)
    assert not env.perp.is_market(3)


# ---------------------------------------------------------------- add_market


def test_add_market__oracle_market__listed_with_configs_events_and_packed_words(
    env, deployer, cfg, risk
):
    market = new_oracle_market(env, deployer)
    c = {**cfg, "max_leverage_bps": 200_000, "position_fee_bps": 7}
    r = {**risk, "insurance_cut_bps": 321, "liquidation_fee_usd": 2 * WAD + MICRO_USD}
    pin(env)
    tx = env.configurator.add_market(market, c, r, sender=deployer)
    expect_applied(tx, env, market, c, r)
    assert env.perp.is_market(market)
    assert [env.perp.markets(i) for i in range(3)] == [*sorted(env.markets.values()), market]
    state = env.reader.market_state(market)
    assert state.last_update == tx.timestamp
    assert (state.borrow_index, state.funding_index_long, state.funding_index_short) == (0, 0, 0)
    assert state.utilisation_pool_amount == env.vault.pool_amount()
    assert env.perp.open_interest(market, True) == (0, 0)
    assert env.perp.open_interest(market, False) == (0, 0)


def test_add_market__new_market__tradable_after_a_price(
    env, deployer, funded_trader, cfg, risk
):
    market = new_oracle_market(env, deployer)
    env.configurator.add_market(market, cfg, risk, sender=deployer)
    price = 150 * WAD
    push_fresh(env, market, price)
    pin(env)
    open_position(env, funded_trader, market, True, env.usd(100), 1_000 * WAD)
    pos = env.perp.get_position(funded_trader, market, True)
    assert pos.size_usd == 1_000 * WAD
    assert pos.size_tokens == tokens_for(1_000 * WAD, price, True)


def test_add_market__not_in_oracle__refused(env, deployer, cfg, risk):
    unknown = env.oracle.market_count() + 1
    assert not env.oracle.is_market(unknown)
    refused(
        env, (deployer,), "config: unknown oracle market",
        env.configurator.add_market, unknown, cfg, risk, sender=deployer,
    )
    assert not env.perp.is_market(unknown)


def test_add_market__already_listed__refused(env, deployer, cfg, risk):
    c = {**cfg, "position_fee_bps": 1}
    refused(
        env, (deployer,), "config: market exists",
        env.configurator.add_market, env.eth, c, risk, sender=deployer,
    )


@pytest.mark.parametrize(
    "c_over, r_over, reason",
    [
        ({"position_fee_bps": MAX_POSITION_FEE_BPS + 1}, {}, "config: bad position fee"),
        ({}, {"insurance_cut_bps": MAX_INSURANCE_CUT_BPS + 1}, "config: bad insurance cut"),
    ],
    ids=["market", "risk"],
)
def test_add_market__bad_config__refused_and_not_listed(
    env, deployer, cfg, risk, c_over, r_over, reason
):
    market = new_oracle_market(env, deployer)
    c, r = {**cfg, **c_over}, {**risk, **r_over}
    refused(env, (deployer,), reason, env.configurator.add_market, market, c, r, sender=deployer)
    assert not env.perp.is_market(market)
    assert env.configurator.configs(market).max_leverage_bps == 0


# ---------------------------------------------------------------- set_market_config


def test_set_market_config__unknown_market__refused(env, deployer, cfg):
    unknown = max(env.markets.values()) + 1
    refused(
        env, (deployer,), "config: unknown market",
        env.configurator.set_market_config, unknown, cfg, sender=deployer,
    )


def test_set_market_config__new_values__read_back_logged_and_stored(
    env, deployer, cfg, risk
):
    new_cfg = {
        "max_leverage_bps": 250_000,
        "position_fee_bps": 25,
        "min_collateral_usd": 20 * WAD + 7 * MICRO_USD,
        "max_open_interest_usd": 7_000_000 * WAD + 1,
        "reserve_factor_bps": 15_000,
        "borrowing_factor": MAX_RATE // 2,
        "funding_factor": MAX_RATE // 3,
        "max_funding_rate": MAX_RATE // 4,
        "maintenance_margin_bps": 99,  # still below the first tier (100)
        "min_maintenance_usd": 7 * WAD + MICRO_USD,
    }
    assert set(new_cfg) == set(cfg)
    tx = env.configurator.set_market_config(env.eth, new_cfg, sender=deployer)
    expect_applied(tx, env, env.eth, new_cfg, risk)  # the risk settings are kept
    assert config_of(env.configurator, env.btc) == cfg  # the other market is untouched
    size = 10_000 * WAD
    assert env.perp.maintenance_margin(env.eth, size) == bps_of(size, 99, True)


def test_set_market_config__new_reserve_factor__reserve_follows_at_once(
    env, deployer, funded_trader, cfg
):
    perp, vault = env.perp, env.vault
    push_fresh(env, env.eth, ETH_PRICE)
    push_fresh(env, env.btc, BTC_PRICE)
    eth_size, btc_size = 10_000 * WAD + 1, 20_000 * WAD
    open_position(env, funded_trader, env.eth, True, env.usd(1_000), eth_size)
    open_position(env, funded_trader, env.btc, False, env.usd(1_000), btc_size)
    btc_usd = bps_of(btc_size, cfg["reserve_factor_bps"], True)
    btc_tokens = to_tokens(btc_usd, env.scale, True)
    eth_old = to_tokens(bps_of(eth_size, cfg["reserve_factor_bps"], True), env.scale, True)
    assert vault.reserved_amount() == eth_old + btc_tokens  # each market rounded up
    factor = 12_345

    new_cfg = {**cfg, "reserve_factor_bps": factor}
    tx = env.configurator.set_market_config(env.eth, new_cfg, sender=deployer)

    eth_usd = bps_of(eth_size, factor, True)
    eth_new = to_tokens(eth_usd, env.scale, True)
    assert env.reader.market_state(env.eth).reserved_usd == eth_usd
    assert env.reader.total_reserved_usd() == eth_usd + btc_usd
    assert vault.reserved_amount() == eth_new + btc_tokens
    [settled] = [decode_settled(x) for x in from_contract(tx, vault.Settled, vault)]
    assert settled.reserved_delta == eth_new - eth_old
    # the reserve alone moves: no bucket changes, no token moves
    assert (settled.pool_delta, settled.collateral_delta) == (0, 0)
    assert (settled.escrow_delta, settled.insurance_delta) == (0, 0)
    assert tx.decode_logs(env.token.Transfer) == []


def test_set_market_config__no_open_interest__no_reserve_no_settlement(env, deployer, cfg):
    new_cfg = {**cfg, "reserve_factor_bps": 20_000}
    tx = env.configurator.set_market_config(env.eth, new_cfg, sender=deployer)
    assert [decode_settled(x) for x in from_contract(tx, env.vault.Settled, env.vault)] == []
    assert env.vault.reserved_amount() == 0


def test_set_market_config__after_time__accrues_borrowing_under_old_rate_first(
    env, deployer, funded_trader, cfg
):
    perp = env.perp
    t0 = push_fresh(env, env.eth, ETH_PRICE)
    open_position(env, funded_trader, env.eth, True, env.usd(2_000), 50_000 * WAD)
    before = env.reader.market_state(env.eth)
    rate = perp.current_rates(env.eth)[0]
    assert rate > 0
    pin(env, t0 + 600)

    new_cfg = {**cfg, "borrowing_factor": 0}
    tx = env.configurator.set_market_config(env.eth, new_cfg, sender=deployer)

    assert tx.timestamp == t0 + 600
    idx = indices_used(env, env.eth)
    assert env.reader.market_state(env.eth).last_update == tx.timestamp
    assert idx.borrow == before.borrow_index + rate * (tx.timestamp - before.last_update)
    assert perp.current_rates(env.eth)[0] == 0
    env.chain.mine(timestamp=t0 + 1_200)  # with the new factor nothing more accrues
    assert perp.current_indices(env.eth).borrow == idx.borrow


# ---------------------------------------------------------------- set_perp, set_deleverager


def test_set_perp__already_set__refused(env, deployer):
    call = env.configurator.set_perp
    refused(env, (deployer,), "config: perp already set", call, deployer, sender=deployer)


def test_set_perp__fresh_configurator__zero_refused_then_set_once_and_logged(
    project, env, deployer, attacker
):
    conf = deployer.deploy(project.Configurator, env.oracle.address, env.vault.address)
    assert conf.perp() == ZERO_ADDRESS
    with ape.reverts("config: zero address"):
        conf.set_perp(ZERO_ADDRESS, sender=deployer)
    with ape.reverts("config: not admin"):
        conf.set_perp(env.perp.address, sender=attacker)
    assert conf.perp() == ZERO_ADDRESS
    tx = conf.set_perp(env.perp.address, sender=deployer)
    assert conf.perp() == env.perp.address
    assert [log.perp for log in tx.decode_logs(conf.PerpSet)] == [env.perp.address]
    with ape.reverts("config: perp already set"):
        conf.set_perp(attacker, sender=deployer)
    assert conf.perp() == env.perp.address


def test_set_deleverager__new_account__only_it_runs_adl_and_logged(
    env, deployer, funded_trader, keeper, attacker
):
    conf, perp, eth = env.configurator, env.perp, env.eth
    tx = conf.set_deleverager(keeper, sender=deployer)
    assert perp.deleverager() == keeper.address
    for contract in (conf, perp):
        logs = from_contract(tx, contract.DeleveragerSet, contract)
        assert [log.deleverager for log in logs] == [keeper.address]
    push_fresh(env, eth, ETH_PRICE)
    open_position(env, funded_trader, eth, True, env.usd(1_000), 10_000 * WAD)
    refused(
        env, (funded_trader,), "perp: not deleverager",
        perp.adl_decrease, funded_trader, eth, True, 4_000 * WAD, sender=attacker,
    )
    perp.adl_decrease(funded_trader, eth, True, 4_000 * WAD, sender=keeper)
    assert perp.get_position(funded_trader, eth, True).size_usd == 6_000 * WAD


# ---------------------------------------------------------------- set_max_pnl_factor


@pytest.mark.parametrize("value", [0, MAX_PNL_FACTOR_BPS + 1])
def test_set_max_pnl_factor__out_of_range__refused(env, deployer, value):
    call = env.configurator.set_max_pnl_factor
    refused(env, (deployer,), "config: bad max pnl factor", call, value, sender=deployer)


@pytest.mark.parametrize("value", [1, MAX_PNL_FACTOR_BPS])
def test_set_max_pnl_factor__in_range__set_in_perp_and_logged(env, deployer, value):
    conf, perp = env.configurator, env.perp
    tx = conf.set_max_pnl_factor(value, sender=deployer)
    assert perp.max_pnl_factor_bps() == value
    for contract in (conf, perp):
        logs = from_contract(tx, contract.MaxPnlFactorSet, contract)
        assert [log.max_pnl_factor_bps for log in logs] == [value]


# ---------------------------------------------------------------- pauser and pause


def test_set_pauser__set_and_cleared__logged(env, deployer, pauser):
    conf = env.configurator
    for account in (pauser.address, ZERO_ADDRESS):
        tx = conf.set_pauser(account, sender=deployer)
        assert conf.pauser() == account
        assert [log.pauser for log in from_contract(tx, conf.PauserSet, conf)] == [account]


def expect_paused(env, tx, account, paused: bool) -> None:
    """All three contracts paused (or not), each logging it."""
    conf, perp, vault = env.configurator, env.perp, env.vault
    assert (conf.paused(), perp.paused(), vault.paused()) == (paused, paused, paused)
    [c] = from_contract(tx, conf.PausedSet, conf)
    assert (c.account, bool(c.paused)) == (account.address, paused)
    [p] = from_contract(tx, perp.PausedSet, perp)
    assert bool(p.paused) == paused
    [v] = from_contract(tx, vault.PausedSet, vault)
    assert (v.account, bool(v.paused)) == (conf.address, paused)


def test_set_paused__pauser_pauses__perp_and_vault_paused_and_logged(env, deployer, pauser):
    env.configurator.set_pauser(pauser, sender=deployer)
    tx = env.configurator.set_paused(True, sender=pauser)
    expect_paused(env, tx, pauser, True)


def test_set_paused__pauser_unpauses__refused_not_admin(env, deployer, pauser):
    env.configurator.set_pauser(pauser, sender=deployer)
    env.configurator.set_paused(True, sender=pauser)
    call = env.configurator.set_paused
    refused(env, (pauser,), "config: not admin", call, False, sender=pauser)
    assert env.configurator.paused() and env.vault.paused()


def test_set_paused__admin_pauses_and_unpauses__both_contracts_follow(env, deployer):
    for paused in (True, False):
        tx = env.configurator.set_paused(paused, sender=deployer)
        expect_paused(env, tx, deployer, paused)


def test_set_paused__stranger_or_former_pauser__refused_not_pauser(
    env, deployer, pauser, attacker
):
    call = env.configurator.set_paused
    refused(env, (attacker,), "config: not pauser", call, True, sender=attacker)
    env.configurator.set_pauser(pauser, sender=deployer)
    env.configurator.set_pauser(ZERO_ADDRESS, sender=deployer)
    refused(env, (pauser,), "config: not pauser", call, True, sender=pauser)


def test_set_paused__paused__opening_and_deposits_refused_closing_open(
    env, deployer, pauser, funded_trader, lp
):
    perp, eth = env.perp, env.eth
    push_fresh(env, eth, ETH_PRICE)
    open_position(env, funded_trader, eth, True, env.usd(1_000), 10_000 * WAD)
    env.configurator.set_pauser(pauser, sender=deployer)
    env.configurator.set_paused(True, sender=pauser)
    pin(env)
    refused(
        env, (funded_trader,), "perp: paused", perp.increase_position,
        eth, False, env.usd(100), 1_000 * WAD, 0, sender=funded_trader,
    )
    refused(env, (lp,), "vault: paused", env.vault.deposit, env.usd(100), 0, lp, sender=lp)
    perp.decrease_position(eth, True, 0, 10_000 * WAD, 0, funded_trader, sender=funded_trader)
    assert perp.get_position(funded_trader, eth, True).size_usd == 0


# ---------------------------------------------------------------- Perp's setters: Configurator only

PERP_SETTERS = {
    "configure_market": lambda env, cfg, risk: (env.eth, {**cfg, "position_fee_bps": 0}, risk),
    "set_market_status": lambda env, cfg, risk: (env.eth, 2, ETH_PRICE),
    "set_paused": lambda env, cfg, risk: (True,),
    "set_max_pnl_factor": lambda env, cfg, risk: (1,),
    "set_deleverager": lambda env, cfg, risk: (env.keeper,),
}


@pytest.mark.parametrize("who", ["deployer", "attacker"])
@pytest.mark.parametrize("name", list(PERP_SETTERS))
def test_perp_setters__not_configurator__refused(env, deployer, attacker, cfg, risk, name, who):
    sender = {"deployer": deployer, "attacker": attacker}[who]
    call, args = getattr(env.perp, name), PERP_SETTERS[name](env, cfg, risk)
    refused(env, (sender,), "perp: not configurator", call, *args, sender=sender)
    assert env.perp.market_status(env.eth) == 0


# ---------------------------------------------------------------- admin transfer


def test_transfer_admin__accepted__new_admin_rules_and_old_one_is_refused(
    env, deployer, new_admin
):
    conf = env.configurator
    tx = conf.transfer_admin(new_admin, sender=deployer)
    [started] = tx.decode_logs(conf.AdminTransferStarted)
    assert (started.admin, started.pending_admin) == (deployer.address, new_admin.address)
    assert (conf.admin(), conf.pending_admin()) == (deployer.address, new_admin.address)

    tx = conf.accept_admin(sender=new_admin)

    [moved] = from_contract(tx, conf.AdminTransferred, conf)
    assert (moved.previous_admin, moved.admin) == (deployer.address, new_admin.address)
    assert (conf.admin(), conf.pending_admin()) == (new_admin.address, ZERO_ADDRESS)
    conf.set_paused(True, sender=new_admin)
    assert env.perp.paused()
    refused(env, (deployer,), "config: not admin", conf.set_paused, False, sender=deployer)


def test_accept_admin__not_pending__refused(env, deployer, new_admin, attacker):
    accept = env.configurator.accept_admin
    # nobody pending: not even the admin can accept
    refused(env, (deployer,), "config: not pending admin", accept, sender=deployer)
    env.configurator.transfer_admin(new_admin, sender=deployer)
    refused(env, (attacker,), "config: not pending admin", accept, sender=attacker)


def test_transfer_admin__replaced_before_accept__first_nominee_refused(
    env, deployer, new_admin, attacker
):
    env.configurator.transfer_admin(attacker, sender=deployer)
    env.configurator.transfer_admin(new_admin, sender=deployer)
    accept = env.configurator.accept_admin
    refused(env, (attacker,), "config: not pending admin", accept, sender=attacker)
    env.configurator.accept_admin(sender=new_admin)
    assert env.configurator.admin() == new_admin.address
