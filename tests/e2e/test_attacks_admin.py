"""Attack catalogue: governance. Every setting outside its hard range is refused with its
named reason (a compromised or careless admin cannot set a 101x leverage, a 0 % jump
bound or a 2-day-plus cooldown), strangers cannot call admin or protocol-internal entry
points, an admin transfer needs the new admin's acceptance, and a wind-down price must lie
near the reference feed. Each refusal leaves every setting and the whole snapshot as it
was. One parametrised case per setting.

Cases:
  test_attack__market_setting_out_of_range__refused[<setting>]      (17 settings)
  test_attack__risk_setting_out_of_range__refused[<setting>]        (8 settings)
  test_attack__oracle_setting_out_of_range__refused[<setting>]      (11 settings)
  test_attack__vault_or_order_book_setting_out_of_range__refused[<setting>]  (5 settings)
  test_attack__admin_call_by_a_stranger__refused_not_admin[<contract.call>]  (9 calls)
  test_attack__unlink_the_oracle_leverage_source__refused_zero_address
  test_attack__internal_entry_point_called_directly__refused[<contract.call>] (6 calls)
  test_attack__admin_takeover_without_acceptance__refused_not_pending_admin
  test_attack__settle_market_off_its_reference__refused_price_off_reference
  test_attack__raise_reserve_factor_past_the_pool__refused_reserve_exceeded
"""

from __future__ import annotations

import pytest

from attack_kit import hold_time, refused
from helpers import MAX_UINT, WAD, build_env, config_of, open_position, push_fresh, risk_of
from perpool import params

SEED = 3_000 * WAD
PER_HOUR = WAD // 3_600
MAX_RATE = PER_HOUR // 100  # the Configurator's 1 %/h ceilings


@pytest.fixture(scope="module")
def env(project, deployer, keeper, lp, chain, trader):
    e = build_env(project, deployer, keeper, lp, chain, 6)
    e.fund(trader)
    push_fresh(e, e.eth, SEED)
    open_position(e, trader, e.eth, True, e.usd(10_000), 100_000 * WAD)
    return e


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, deployer, attacker, keeper, trader, lp):
    """Module fixtures before any test (Ape's isolation never rebases a snapshot)."""


@pytest.fixture
def people(trader, lp, attacker):
    return [trader, lp, attacker]


def settings(env):
    """Every admin-set value, to compare before and after a refusal."""
    c, o, v = env.configurator, env.orders, env.vault
    return (
        [tuple(c.configs(m)) for m in env.markets.values()],
        [tuple(c.risk_configs(m)) for m in env.markets.values()],
        tuple(env.oracle.config()),
        (v.mint_fee_bps(), v.burn_fee_bps(), v.cooldown()),
        (o.min_execution_fee(), o.timeout(), o.expiry()),
        (c.admin(), c.pending_admin(), env.perp.max_pnl_factor_bps(), env.perp.paused()),
    )


def refused_setting(env, people, reason, call, *args, **kwargs):
    before = settings(env)
    hold_time(env)
    refused(env, people, reason, call, *args, **kwargs)
    assert settings(env) == before


# ---------------------------------------------------------------- market settings

M = params.MARKET_CONFIG
MARKET_CASES = {
    "leverage_below_1x": ({"max_leverage_bps": 9_999}, "config: bad max leverage"),
    "leverage_above_100x": ({"max_leverage_bps": 1_000_001}, "config: bad max leverage"),
    "position_fee_above_1pct": ({"position_fee_bps": 101}, "config: bad position fee"),
    "min_collateral_below_1_usd": ({"min_collateral_usd": WAD - 10**12}, "config: bad min collateral"),
    "min_collateral_above_10k_usd": ({"min_collateral_usd": 10_000 * WAD + 10**12}, "config: bad min collateral"),
    "min_collateral_not_whole_micro_usd": ({"min_collateral_usd": 10 * WAD + 1}, "config: bad min collateral"),
    "open_interest_beyond_112_bits": ({"max_open_interest_usd": 2**112}, "config: bad max open interest"),
    "reserve_factor_below_10pct": ({"reserve_factor_bps": 999}, "config: bad reserve factor"),
    "reserve_factor_above_200pct": ({"reserve_factor_bps": 20_001}, "config: bad reserve factor"),
    "borrowing_above_1pct_per_hour": ({"borrowing_factor": MAX_RATE + 1}, "config: bad borrowing factor"),
    "funding_above_1pct_per_hour": ({"funding_factor": MAX_RATE + 1}, "config: bad funding factor"),
    "max_funding_above_1pct_per_hour": ({"max_funding_rate": MAX_RATE + 1}, "config: bad max funding rate"),
    "maintenance_below_10bps": ({"maintenance_margin_bps": 9}, "config: bad maintenance margin"),
    # the Oracle's jump bound (2 %) is the initial margin at 50x: more leverage would let a
    # hedged pair gain across one push more than the losing leg's collateral
    "leverage_above_the_oracle_jump_margin": ({"max_leverage_bps": 500_001}, "config: leverage above oracle jump"),
    # 50x opens at a 2 % margin: a 2 % maintenance would make it liquidatable at once
    "maintenance_at_initial_margin": ({"maintenance_margin_bps": 200}, "config: bad maintenance margin"),
    "min_maintenance_at_min_collateral": ({"min_maintenance_usd": M["min_collateral_usd"]}, "config: bad min maintenance"),
    "min_maintenance_not_whole_micro_usd": ({"min_maintenance_usd": 5 * WAD + 1}, "config: bad min maintenance"),
}


@pytest.mark.parametrize("case", list(MARKET_CASES))
def test_attack__market_setting_out_of_range__refused(env, people, deployer, case):
    change, reason = MARKET_CASES[case]
    c = {**config_of(env.configurator, env.eth), **change}
    refused_setting(env, people, reason, env.configurator.set_market_config, env.eth, c, sender=deployer)


R = params.RISK_CONFIG
RISK_CASES = {
    "tiers_not_increasing": ({"tier_threshold_usd": [5_000_000 * WAD, 1_000_000 * WAD, 20_000_000 * WAD]}, "config: bad tier"),
    "tier_rate_below_base": ({"tier_maintenance_bps": [40, 150, 250]}, "config: bad tier"),
    "tier_after_an_ended_table": ({"tier_threshold_usd": [1_000_000 * WAD, 0, 20_000_000 * WAD], "tier_maintenance_bps": [100, 0, 250]}, "config: bad tier"),
    "liquidation_fee_above_100_usd": ({"liquidation_fee_usd": 100 * WAD + 10**12}, "config: bad liquidation fee"),
    # a fee above half the maintenance could be farmed through the insurance top-up
    "liquidation_fee_above_half_maintenance": ({"liquidation_fee_bps": 26}, "config: liquidation fee above half the maintenance"),
    "insurance_cut_above_half": ({"insurance_cut_bps": 5_001}, "config: bad insurance cut"),
    "trader_pnl_cap_zero": ({"max_pnl_factor_for_traders_bps": 0}, "config: bad pnl factor"),
    "adl_target_not_below_trigger": ({"min_pnl_factor_after_adl_bps": R["max_pnl_factor_for_adl_bps"]}, "config: bad pnl factor"),
}


@pytest.mark.parametrize("case", list(RISK_CASES))
def test_attack__risk_setting_out_of_range__refused(env, people, deployer, case):
    change, reason = RISK_CASES[case]
    r = {**risk_of(env.configurator, env.eth), **change}
    refused_setting(env, people, reason, env.configurator.set_risk_config, env.eth, r, sender=deployer)


O = params.ORACLE_CONFIG
ORACLE_CASES = {
    "max_price_age_below_10s": ({"max_price_age": 9}, "oracle: bad max_price_age"),
    "max_price_age_above_a_day": ({"max_price_age": 86_401}, "oracle: bad max_price_age"),
    "future_skew_above_5min": ({"max_future_skew": 301}, "oracle: bad max_future_skew"),
    "window_below_a_minute": ({"window": 59}, "oracle: bad window"),
    "jump_bound_zero": ({"max_jump_bps": 0}, "oracle: bad max_jump_bps"),
    "jump_bound_above_50pct": ({"max_jump_bps": 5_001, "max_window_move_bps": 9_000}, "oracle: bad max_jump_bps"),
    # the markets list 50x: one push may move at most their 2 % initial margin
    "jump_above_the_max_leverage_margin": ({"max_jump_bps": 201}, "oracle: jump above max leverage margin"),
    "window_move_below_jump": ({"max_window_move_bps": O["max_jump_bps"] - 1}, "oracle: bad max_window_move_bps"),
    "spread_above_5pct": ({"spread_bps": 501}, "oracle: bad spread_bps"),
    "reference_deviation_zero": ({"max_deviation_bps": 0}, "oracle: bad max_deviation_bps"),
    "fallback_spread_above_10pct": ({"fallback_spread_bps": 1_001}, "oracle: bad fallback_spread_bps"),
}


@pytest.mark.parametrize("case", list(ORACLE_CASES))
def test_attack__oracle_setting_out_of_range__refused(env, people, deployer, case):
    change, reason = ORACLE_CASES[case]
    c = {**{k: getattr(env.oracle.config(), k) for k in O}, **change}
    refused_setting(env, people, reason, env.oracle.set_config, c, sender=deployer)


LP_ORDER_CASES = {
    "mint_fee_above_1pct": ("vault", "set_fees", lambda e: (101, 10), "vault: fee too high"),
    "cooldown_above_2_days": ("vault", "set_cooldown", lambda e: (172_801,), "vault: cooldown too long"),
    "order_timeout_below_10s": ("orders", "set_settings", lambda e: (e.orders.min_execution_fee(), 9, 1_800), "orders: bad timeout"),
    "order_expiry_not_after_timeout": ("orders", "set_settings", lambda e: (e.orders.min_execution_fee(), 180, 180), "orders: bad expiry"),
    "min_execution_fee_above_100_usd": ("orders", "set_settings", lambda e: (e.usd(100) + 1, 180, 1_800), "orders: min fee too large"),
}


@pytest.mark.parametrize("case", list(LP_ORDER_CASES))
def test_attack__vault_or_order_book_setting_out_of_range__refused(env, people, deployer, case):
    contract, method, args, reason = LP_ORDER_CASES[case]
    call = getattr(getattr(env, contract), method)
    refused_setting(env, people, reason, call, *args(env), sender=deployer)


# ---------------------------------------------------------------- who may call


STRANGER_CASES = {
    "configurator.set_market_config": ("configurator", "set_market_config", lambda e: (e.eth, config_of(e.configurator, e.eth)), "config: not admin"),
    "configurator.settle_market": ("configurator", "settle_market", lambda e: (e.eth, SEED), "config: not admin"),
    "configurator.set_direct_fills": ("configurator", "set_direct_fills", lambda e: (e.eth, False), "config: not admin"),
    "oracle.set_updater": ("oracle", "set_updater", lambda e: (e.oracle.address, True), "oracle: not admin"),
    "oracle.set_leverage_source": ("oracle", "set_leverage_source", lambda e: (e.oracle.address,), "oracle: not admin"),
    "vault.withdraw_insurance": ("vault", "withdraw_insurance", lambda e: (1, e.vault.address), "vault: not admin"),
    "vault.set_controller": ("vault", "set_controller", lambda e: (e.vault.address, True), "vault: not admin"),
    "orders.set_keeper": ("orders", "set_keeper", lambda e: (e.orders.address, True), "orders: not admin"),
    "vault.set_paused": ("vault", "set_paused", lambda e: (True,), "vault: not pauser"),
}


@pytest.mark.parametrize("case", list(STRANGER_CASES))
def test_attack__admin_call_by_a_stranger__refused_not_admin(env, people, attacker, case):
    contract, method, args, reason = STRANGER_CASES[case]
    refused_setting(env, people, reason, getattr(getattr(env, contract), method), *args(env), sender=attacker)


INTERNAL_CASES = {
    # the Vault's balanced settle: a stranger paying itself from the collateral bucket
    "vault.settle": ("vault", "settle", lambda e, a: ((a.address, 0, 0, -(10**6), 0, 0, a.address, 10**6, 0, "0x" + "00" * 20, 0),), "vault: not controller"),
    "perp.trade_for": ("perp", "trade_for", lambda e, a: (a.address, e.eth, True, True, 10**6, 1_000 * WAD, MAX_UINT), "perp: not order book"),
    "perp.adl_decrease": ("perp", "adl_decrease", lambda e, a: (a.address, e.eth, True, WAD), "perp: not deleverager"),
    "perp.configure_market": ("perp", "configure_market", lambda e, a: (e.eth, config_of(e.configurator, e.eth), risk_of(e.configurator, e.eth)), "perp: not configurator"),
    "perp.set_paused": ("perp", "set_paused", lambda e, a: (True,), "perp: not configurator"),
    "perp.set_market_status": ("perp", "set_market_status", lambda e, a: (e.eth, 2, 1), "perp: not configurator"),
}


@pytest.mark.parametrize("case", list(INTERNAL_CASES))
def test_attack__internal_entry_point_called_directly__refused(env, people, attacker, case):
    contract, method, args, reason = INTERNAL_CASES[case]
    refused_setting(env, people, reason, getattr(getattr(env, contract), method), *args(env, attacker), sender=attacker)


def test_attack__unlink_the_oracle_leverage_source__refused_zero_address(env, people, deployer):
    """Unlinking the Configurator would let the next set_config raise the jump bound past
    the markets' margin: the link can be replaced, never removed."""
    assert env.oracle.leverage_source() == env.configurator.address
    refused_setting(env, people, "oracle: zero address", env.oracle.set_leverage_source, "0x" + "00" * 20, sender=deployer)
    assert env.oracle.leverage_source() == env.configurator.address


def test_attack__admin_takeover_without_acceptance__refused_not_pending_admin(env, people, attacker, deployer, lp):
    """An admin transfer names a pending admin, who must accept; nobody else can."""
    env.configurator.transfer_admin(lp, sender=deployer)
    for contract, reason in (
        (env.configurator, "config: not pending admin"),
        (env.oracle, "oracle: not pending admin"),
        (env.vault, "vault: not pending admin"),
        (env.orders, "orders: not pending admin"),
    ):
        refused_setting(env, people, reason, contract.accept_admin, sender=attacker)
    assert env.configurator.admin() == deployer.address


def test_attack__settle_market_off_its_reference__refused_price_off_reference(env, people, deployer, project):
    """Settling a market (the JELLY answer) fixes every close price: the price must lie
    within max_deviation_bps of the reference feed, so an admin cannot settle traders out
    at a made-up price."""
    feed = deployer.deploy(project.TestFeed, 8)
    feed.set_answer(SEED // 10**10, 0, sender=deployer)
    env.oracle.set_reference_feed(env.eth, feed, 3_600, sender=deployer)
    bound = SEED * (10_000 + env.oracle.config().max_deviation_bps) // 10_000
    refused_setting(env, people, "config: price off reference", env.configurator.settle_market, env.eth, bound + 1, sender=deployer)
    refused_setting(env, people, "config: zero price", env.configurator.settle_market, env.eth, 0, sender=deployer)
    assert env.perp.market_status(env.eth) == 0


def test_attack__raise_reserve_factor_past_the_pool__refused_reserve_exceeded(env, people, deployer):
    """Raising the reserve factor would reserve more than the pool holds: refused, so no
    setting change can leave open interest unbacked."""
    factor = 20_000  # the Configurator's ceiling: reserve 2x the open interest
    c = {**config_of(env.configurator, env.eth), "reserve_factor_bps": factor}
    # $700k of open interest in a $1M pool: 2x of it exceeds the pool
    env.fund(people[2], 2_000_000)
    open_position(env, people[2], env.eth, False, env.usd(100_000), 600_000 * WAD)
    hold_time(env)
    oi = sum(env.perp.open_interest(env.eth, s)[0] for s in (True, False))
    assert -(-oi * factor // 10_000) // env.scale > env.vault.pool_amount()
    refused_setting(env, people, "perp: reserve exceeded", env.configurator.set_market_config, env.eth, c, sender=deployer)
