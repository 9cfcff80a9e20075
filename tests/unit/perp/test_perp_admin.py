"""Perp admin: markets and their bounded settings, pause, max pnl factor, admin transfer.

The hard bounds below restate the constants of contracts/Perp.vy (`_set_config`); each
is checked one step outside (refused with its reason, nothing changed) and at the edge
(accepted and read back through `configs`).
"""

from __future__ import annotations

import ape
import pytest

from helpers import (
    assert_refused,
    BPS,
    WAD,
    ZERO_ADDRESS,
    Indices,
    bps_of,
    config_of,
    fast_reverts,  # noqa: F401 (autouse fixture)
    indices_used,
    open_position,
    pin,
    state_of,
    to_tokens,
)
from perpool import params

# Perp.vy's hard bounds on market settings
MIN_LEVERAGE_BPS = 10_000
MAX_LEVERAGE_BPS = 1_000_000
MAX_POSITION_FEE_BPS = 100
MIN_MIN_COLLATERAL_USD = WAD
MAX_MIN_COLLATERAL_USD = 10_000 * WAD
MAX_OPEN_INTEREST = 2**112 - 1  # packed in 112 bits
MIN_RESERVE_FACTOR_BPS = 1_000
MAX_RESERVE_FACTOR_BPS = 20_000
MAX_RATE = WAD // 3_600 // 100  # 1 %/h: borrowing factor, funding factor, max funding rate
MIN_MAINTENANCE_BPS = 10
MAX_MAINTENANCE_BPS = 5_000
MAX_PNL_FACTOR_BPS = 10_000
DEFAULT_MAX_PNL_FACTOR_BPS = 9_000  # set by the constructor


@pytest.fixture(scope="module")
def new_admin(accounts):
    return accounts[7]


@pytest.fixture(scope="module")
def cfg():
    return dict(params.MARKET_CONFIG)


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, deployer, attacker, new_admin, funded_trader, cfg):
    """Set up the module- and session-scoped fixtures before any test, so Ape's isolation
    never has to rebase a snapshot."""



def listed(perp):
    """The `markets` array, read one index at a time until the getter refuses."""
    out = []
    while True:
        try:
            out.append(perp.markets(len(out)))
        except ape.exceptions.ContractLogicError:
            return out


def new_oracle_market(env, deployer, name="SOL"):
    env.oracle.add_market(name, sender=deployer)
    return env.oracle.market_count()


# ---------------------------------------------------------------- deployment


def test_constructor__wires_oracle_vault_and_admin(env, deployer, cfg):
    perp = env.perp
    assert perp.oracle() == env.oracle.address
    assert perp.vault() == env.vault.address
    assert perp.token_scale() == env.vault.token_scale() == env.scale
    assert (perp.admin(), perp.pending_admin()) == (deployer.address, ZERO_ADDRESS)
    assert not perp.paused()
    assert perp.max_pnl_factor_bps() == DEFAULT_MAX_PNL_FACTOR_BPS
    assert listed(perp) == sorted(env.markets.values())
    for market in env.markets.values():
        assert perp.is_market(market)
        assert config_of(perp, market) == cfg


# ---------------------------------------------------------------- only the admin


@pytest.mark.parametrize(
    "name, args",
    [
        ("add_market", lambda env, cfg: (3, cfg)),
        ("set_market_config", lambda env, cfg: (env.eth, cfg)),
        ("set_paused", lambda env, cfg: (True,)),
        ("set_max_pnl_factor", lambda env, cfg: (5_000,)),
        ("transfer_admin", lambda env, cfg: (env.keeper,)),
    ],
)
def test_admin__non_admin_call__refused_not_admin(env, attacker, deployer, cfg, name, args):
    new_oracle_market(env, deployer)  # market 3 exists in the oracle, so only the caller is wrong
    call = getattr(env.perp, name)
    assert_refused(env, (attacker,), "perp: not admin", call, *args(env, cfg), sender=attacker)


# ---------------------------------------------------------------- markets


def test_add_market__oracle_market__listed_with_its_config_and_events(env, deployer, cfg):
    perp = env.perp
    market = new_oracle_market(env, deployer)
    new_cfg = {**cfg, "max_leverage_bps": 200_000, "position_fee_bps": 7}

    pin(env)
    tx = perp.add_market(market, new_cfg, sender=deployer)

    assert listed(perp) == sorted(env.markets.values()) + [market]
    assert perp.is_market(market)
    assert config_of(perp, market) == new_cfg
    [added] = tx.decode_logs(perp.MarketAdded)
    assert added.market == market
    [logged] = tx.decode_logs(perp.MarketConfigSet)
    assert logged.market == market
    assert {k: getattr(logged, k) for k in new_cfg} == new_cfg
    state = perp.market_state(market)
    assert state.last_update == tx.timestamp
    assert Indices.of_state(state) == Indices()
    assert perp.open_interest(market, True) == perp.open_interest(market, False) == (0, 0)


def test_add_market__new_market__tradable_after_a_price(env, deployer, funded_trader, cfg):
    market = new_oracle_market(env, deployer)
    env.perp.add_market(market, cfg, sender=deployer)
    price = 150 * WAD
    t = env.chain.blocks.head.timestamp + 1
    pin(env, t)
    env.oracle.set_prices([market], [price], t, sender=env.keeper)
    pin(env, t)
    open_position(env, funded_trader, market, True, env.usd(100), 1_000 * WAD)
    pos = env.perp.get_position(funded_trader, market, True)
    assert (pos.size_usd, pos.size_tokens) == (1_000 * WAD, 1_000 * WAD * WAD // price)


def test_add_market__not_in_oracle__refused(env, deployer, cfg):
    unknown = env.oracle.market_count() + 1
    assert not env.oracle.is_market(unknown)
    assert_refused(
        env, (deployer,), "perp: unknown oracle market",
        env.perp.add_market, unknown, cfg, sender=deployer,
    )


def test_add_market__already_listed__refused(env, deployer, cfg):
    assert_refused(
        env, (deployer,), "perp: market exists", env.perp.add_market, env.eth, cfg, sender=deployer
    )


def test_add_market__bad_config__refused_and_not_listed(env, deployer, cfg):
    market = new_oracle_market(env, deployer)
    assert_refused(
        env, (deployer,), "perp: bad position fee",
        env.perp.add_market, market, {**cfg, "position_fee_bps": MAX_POSITION_FEE_BPS + 1},
        sender=deployer,
    )
    assert not env.perp.is_market(market)


def test_set_market_config__unknown_market__refused(env, deployer, cfg):
    unknown = max(env.markets.values()) + 1
    assert_refused(
        env, (deployer,), "perp: unknown market",
        env.perp.set_market_config, unknown, cfg, sender=deployer,
    )


def test_set_market_config__new_values__read_back_and_logged(env, deployer, cfg):
    new_cfg = {
        "max_leverage_bps": 250_000,
        "position_fee_bps": 25,
        "min_collateral_usd": 20 * WAD,
        "max_open_interest_usd": 7_000_000 * WAD,
        "reserve_factor_bps": 15_000,
        "borrowing_factor": MAX_RATE // 2,
        "funding_factor": MAX_RATE // 3,
        "max_funding_rate": MAX_RATE // 4,
        "maintenance_margin_bps": 100,
        "min_maintenance_usd": 7 * WAD,
    }
    assert set(new_cfg) == set(cfg)
    tx = env.perp.set_market_config(env.eth, new_cfg, sender=deployer)
    assert config_of(env.perp, env.eth) == new_cfg
    assert config_of(env.perp, env.btc) == cfg  # the other market is untouched
    [logged] = tx.decode_logs(env.perp.MarketConfigSet)
    assert logged.market == env.eth
    assert {k: getattr(logged, k) for k in new_cfg} == new_cfg


def test_set_market_config__new_reserve_factor__reserve_follows_at_once(
    env, deployer, funded_trader, cfg
):
    perp, vault = env.perp, env.vault
    open_position(env, funded_trader, env.eth, True, env.usd(1_000), 10_000 * WAD + 1)
    open_position(env, funded_trader, env.btc, False, env.usd(1_000), 20_000 * WAD)
    btc_reserved = bps_of(20_000 * WAD, cfg["reserve_factor_bps"], True)
    factor = 12_345

    perp.set_market_config(env.eth, {**cfg, "reserve_factor_bps": factor}, sender=deployer)

    eth_reserved = bps_of(10_000 * WAD + 1, factor, True)
    assert perp.market_state(env.eth).reserved_usd == eth_reserved
    assert perp.total_reserved_usd() == eth_reserved + btc_reserved
    assert vault.reserved_amount() == to_tokens(eth_reserved + btc_reserved, env.scale, True)


def test_set_market_config__after_time__accrues_borrowing_under_old_rate_first(
    env, deployer, funded_trader, cfg
):
    perp = env.perp
    pin(env)
    open_position(env, funded_trader, env.eth, True, env.usd(2_000), 50_000 * WAD)
    before = perp.market_state(env.eth)
    rate = perp.rates(env.eth).borrowing_rate_per_second
    assert rate > 0
    env.chain.mine(deltatime=600)

    tx = perp.set_market_config(env.eth, {**cfg, "borrowing_factor": 0}, sender=deployer)

    idx = indices_used(env, env.eth)
    assert perp.market_state(env.eth).last_update == tx.timestamp
    assert idx.borrow == before.borrow_index + rate * (tx.timestamp - before.last_update)
    assert perp.rates(env.eth).borrowing_rate_per_second == 0
    # with the new factor nothing more accrues
    env.chain.mine(deltatime=600)
    assert perp.current_indices(env.eth).borrow == idx.borrow


# ---------------------------------------------------------------- config bounds


# (field, refused value, other fields needed for the case, reason)
REFUSED = [
    ("max_leverage_bps", MIN_LEVERAGE_BPS - 1, {}, "perp: bad max leverage"),
    ("max_leverage_bps", MAX_LEVERAGE_BPS + 1, {}, "perp: bad max leverage"),
    ("position_fee_bps", MAX_POSITION_FEE_BPS + 1, {}, "perp: bad position fee"),
    (
        "min_collateral_usd", MIN_MIN_COLLATERAL_USD - 1, {"min_maintenance_usd": 0},
        "perp: bad min collateral",
    ),
    ("min_collateral_usd", MAX_MIN_COLLATERAL_USD + 1, {}, "perp: bad min collateral"),
    ("max_open_interest_usd", MAX_OPEN_INTEREST + 1, {}, "perp: bad max open interest"),
    ("reserve_factor_bps", MIN_RESERVE_FACTOR_BPS - 1, {}, "perp: bad reserve factor"),
    ("reserve_factor_bps", MAX_RESERVE_FACTOR_BPS + 1, {}, "perp: bad reserve factor"),
    ("borrowing_factor", MAX_RATE + 1, {}, "perp: bad borrowing factor"),
    ("funding_factor", MAX_RATE + 1, {}, "perp: bad funding factor"),
    ("max_funding_rate", MAX_RATE + 1, {}, "perp: bad max funding rate"),
    ("maintenance_margin_bps", MIN_MAINTENANCE_BPS - 1, {}, "perp: bad maintenance margin"),
    (
        "maintenance_margin_bps", MAX_MAINTENANCE_BPS + 1, {"max_leverage_bps": MIN_LEVERAGE_BPS},
        "perp: bad maintenance margin",
    ),
    # at max leverage the initial margin (1 / leverage) must exceed the maintenance margin
    (
        "maintenance_margin_bps", BPS * BPS // 500_000, {"max_leverage_bps": 500_000},
        "perp: bad maintenance margin",
    ),
    (
        "min_maintenance_usd", 10 * WAD, {"min_collateral_usd": 10 * WAD},
        "perp: bad min maintenance",
    ),
]

ACCEPTED = [
    ("max_leverage_bps", MIN_LEVERAGE_BPS, {}),
    ("max_leverage_bps", MAX_LEVERAGE_BPS, {}),
    ("position_fee_bps", MAX_POSITION_FEE_BPS, {}),
    ("position_fee_bps", 0, {}),
    (
        "min_collateral_usd", MIN_MIN_COLLATERAL_USD,
        {"min_maintenance_usd": MIN_MIN_COLLATERAL_USD - 1},
    ),
    ("min_collateral_usd", MAX_MIN_COLLATERAL_USD, {}),
    ("max_open_interest_usd", MAX_OPEN_INTEREST, {}),
    ("reserve_factor_bps", MIN_RESERVE_FACTOR_BPS, {}),
    ("reserve_factor_bps", MAX_RESERVE_FACTOR_BPS, {}),
    ("borrowing_factor", MAX_RATE, {}),
    ("funding_factor", MAX_RATE, {}),
    ("max_funding_rate", MAX_RATE, {}),
    ("maintenance_margin_bps", MIN_MAINTENANCE_BPS, {}),
    (
        "maintenance_margin_bps", MAX_MAINTENANCE_BPS,
        {"max_leverage_bps": BPS * BPS // MAX_MAINTENANCE_BPS - 1},
    ),
    ("maintenance_margin_bps", BPS * BPS // 500_000 - 1, {"max_leverage_bps": 500_000}),
    ("min_maintenance_usd", 10 * WAD - 1, {"min_collateral_usd": 10 * WAD}),
]


def _id(case):
    return f"{case[0]}={case[1]}"


@pytest.mark.parametrize("field, value, others, reason", REFUSED, ids=[_id(c) for c in REFUSED])
def test_set_market_config__one_step_outside_bound__refused(
    env, deployer, cfg, field, value, others, reason
):
    bad = {**cfg, **others, field: value}
    assert_refused(
        env, (deployer,), reason, env.perp.set_market_config, env.eth, bad, sender=deployer
    )


@pytest.mark.parametrize("field, value, others", ACCEPTED, ids=[_id(c) for c in ACCEPTED])
def test_set_market_config__at_bound__accepted(env, deployer, cfg, field, value, others):
    edge = {**cfg, **others, field: value}
    env.perp.set_market_config(env.eth, edge, sender=deployer)
    assert config_of(env.perp, env.eth) == edge


# ---------------------------------------------------------------- pause


def test_set_paused__toggles_and_logs(env, deployer):
    tx = env.perp.set_paused(True, sender=deployer)
    assert env.perp.paused()
    assert [bool(log.paused) for log in tx.decode_logs(env.perp.PausedSet)] == [True]
    tx = env.perp.set_paused(False, sender=deployer)
    assert not env.perp.paused()
    assert [bool(log.paused) for log in tx.decode_logs(env.perp.PausedSet)] == [False]


# ---------------------------------------------------------------- max pnl factor


@pytest.mark.parametrize("value", [0, MAX_PNL_FACTOR_BPS + 1])
def test_set_max_pnl_factor__out_of_range__refused(env, deployer, value):
    assert_refused(
        env, (deployer,), "perp: bad max pnl factor",
        env.perp.set_max_pnl_factor, value, sender=deployer,
    )


@pytest.mark.parametrize("value", [1, MAX_PNL_FACTOR_BPS])
def test_set_max_pnl_factor__in_range__set_and_logged(env, deployer, value):
    tx = env.perp.set_max_pnl_factor(value, sender=deployer)
    assert env.perp.max_pnl_factor_bps() == value
    assert [log.max_pnl_factor_bps for log in tx.decode_logs(env.perp.MaxPnlFactorSet)] == [value]


# ---------------------------------------------------------------- admin transfer


def test_transfer_admin__accepted__new_admin_rules_and_old_one_is_refused(env, deployer, new_admin):
    perp = env.perp
    tx = perp.transfer_admin(new_admin, sender=deployer)
    [started] = tx.decode_logs(perp.AdminTransferStarted)
    assert (started.admin, started.pending_admin) == (deployer.address, new_admin.address)
    assert (perp.admin(), perp.pending_admin()) == (deployer.address, new_admin.address)

    tx = perp.accept_admin(sender=new_admin)

    [moved] = tx.decode_logs(perp.AdminTransferred)
    assert (moved.previous_admin, moved.admin) == (deployer.address, new_admin.address)
    assert (perp.admin(), perp.pending_admin()) == (new_admin.address, ZERO_ADDRESS)
    perp.set_paused(True, sender=new_admin)
    assert perp.paused()
    assert_refused(env, (deployer,), "perp: not admin", perp.set_paused, False, sender=deployer)


def test_accept_admin__not_pending__refused(env, deployer, new_admin, attacker):
    # nobody pending: not even the admin can accept
    assert_refused(
        env, (deployer,), "perp: not pending admin", env.perp.accept_admin, sender=deployer
    )
    env.perp.transfer_admin(new_admin, sender=deployer)
    assert_refused(
        env, (attacker,), "perp: not pending admin", env.perp.accept_admin, sender=attacker
    )


def test_transfer_admin__replaced_before_accept__first_nominee_refused(
    env, deployer, new_admin, attacker
):
    env.perp.transfer_admin(attacker, sender=deployer)
    env.perp.transfer_admin(new_admin, sender=deployer)
    assert_refused(
        env, (attacker,), "perp: not pending admin", env.perp.accept_admin, sender=attacker
    )
    env.perp.accept_admin(sender=new_admin)
    assert env.perp.admin() == new_admin.address
