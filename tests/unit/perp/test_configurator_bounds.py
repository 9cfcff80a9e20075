"""Configurator bounds: every MarketConfig and RiskConfig field one step outside its
bound (refused with its "config: ..." reason, nothing changed) and at the edge (accepted,
read back, logged and stored packed by Perp), and the maintenance tiers as Perp applies
them (`maintenance_margin` one unit either side of each threshold).

The bounds restate the constants of contracts/Configurator.vy (`_check_market`,
`_check_risk`). USD floors, fees and thresholds must be whole micro-dollars (1e12 WAD).
"""

from __future__ import annotations

import pytest

from helpers import (
    NO_CUT_RISK,
    WAD,
    bps_of,
    buckets,
    fast_reverts,  # noqa: F401 (autouse fixture)
    open_position,
    position_fee,
    push_fresh,
)
from perpool import params
from test_configurator import (
    ETH_PRICE,
    MAX_INSURANCE_CUT_BPS,
    MAX_PNL_FACTOR_BPS,
    MAX_POSITION_FEE_BPS,
    MAX_RATE,
    MICRO_USD,
    expect_applied,
    maintenance,
    refused,
    risk_of,
)

BPS = 10_000
# Configurator.vy's bounds on market settings
MIN_LEVERAGE_BPS = 10_000
MAX_LEVERAGE_BPS = 1_000_000
MAX_MIN_COLLATERAL_USD = 10_000 * WAD  # the lower bound is $1
MAX_OPEN_INTEREST = 2**112 - 1
MIN_RESERVE_FACTOR_BPS = 1_000
MAX_RESERVE_FACTOR_BPS = 20_000
MIN_MAINTENANCE_BPS = 10
MAX_MAINTENANCE_BPS = 5_000
# ...and on risk settings
MAX_TIER_THRESHOLD = (2**56 - 1) * MICRO_USD
MAX_LIQUIDATION_FEE_USD = 100 * WAD
MAX_LIQUIDATION_FEE_BPS = 100
NO_TIERS = {"tier_threshold_usd": [0, 0, 0], "tier_maintenance_bps": [0, 0, 0]}


@pytest.fixture(scope="module")
def cfg():
    return dict(params.MARKET_CONFIG)


@pytest.fixture(scope="module")
def risk():
    return {k: list(v) if isinstance(v, list) else v for k, v in NO_CUT_RISK.items()}


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, deployer, funded_trader, cfg, risk):
    """Module- and session-scoped fixtures first, so Ape's isolation never rebases."""


# ---------------------------------------------------------------- base rate vs tiers


@pytest.mark.parametrize("base_bps", [100, 101], ids=["equal_first_tier", "above_first_tier"])
def test_set_market_config__base_maintenance_not_below_first_tier__refused_bad_tier(
    env, deployer, cfg, base_bps
):
    c = {**cfg, "maintenance_margin_bps": base_bps}
    call = env.configurator.set_market_config
    refused(env, (deployer,), "config: bad tier", call, env.eth, c, sender=deployer)


# ---------------------------------------------------------------- market config bounds

BAD_LEVERAGE, BAD_MAINTENANCE = "config: bad max leverage", "config: bad maintenance margin"
BAD_MIN_COLLATERAL = "config: bad min collateral"
BAD_MIN_MAINTENANCE = "config: bad min maintenance"

# (field, refused value, other fields needed for the case, reason)
REFUSED = [
    # the default keeper fee ($2) must stay within half the USD floor
    ("min_maintenance_usd", 4 * WAD - MICRO_USD, {}, "config: liquidation fee above half the maintenance"),
    ("max_leverage_bps", MIN_LEVERAGE_BPS - 1, {}, BAD_LEVERAGE),
    ("max_leverage_bps", MAX_LEVERAGE_BPS + 1, {}, BAD_LEVERAGE),
    # the Oracle's default jump bound (2 %) is the initial margin at 50x: one bps above is refused
    ("max_leverage_bps", BPS * BPS // params.ORACLE_CONFIG["max_jump_bps"] + 1, {}, "config: leverage above oracle jump"),
    ("position_fee_bps", MAX_POSITION_FEE_BPS + 1, {}, "config: bad position fee"),
    ("min_collateral_usd", WAD - MICRO_USD, {"min_maintenance_usd": 0}, BAD_MIN_COLLATERAL),
    ("min_collateral_usd", MAX_MIN_COLLATERAL_USD + MICRO_USD, {}, BAD_MIN_COLLATERAL),
    ("min_collateral_usd", 10 * WAD + 1, {}, BAD_MIN_COLLATERAL),  # not whole micro-dollars
    ("max_open_interest_usd", MAX_OPEN_INTEREST + 1, {}, "config: bad max open interest"),
    ("reserve_factor_bps", MIN_RESERVE_FACTOR_BPS - 1, {}, "config: bad reserve factor"),
    ("reserve_factor_bps", MAX_RESERVE_FACTOR_BPS + 1, {}, "config: bad reserve factor"),
    ("borrowing_factor", MAX_RATE + 1, {}, "config: bad borrowing factor"),
    ("funding_factor", MAX_RATE + 1, {}, "config: bad funding factor"),
    ("max_funding_rate", MAX_RATE + 1, {}, "config: bad max funding rate"),
    ("maintenance_margin_bps", MIN_MAINTENANCE_BPS - 1, {}, BAD_MAINTENANCE),
    (
        "maintenance_margin_bps", MAX_MAINTENANCE_BPS + 1,
        {"max_leverage_bps": MIN_LEVERAGE_BPS}, BAD_MAINTENANCE,
    ),
    # at max leverage the initial margin (1 / leverage) must exceed the maintenance margin
    (
        "maintenance_margin_bps", BPS * BPS // 500_000,
        {"max_leverage_bps": 500_000}, BAD_MAINTENANCE,
    ),
    ("min_maintenance_usd", 10 * WAD, {"min_collateral_usd": 10 * WAD}, BAD_MIN_MAINTENANCE),
    ("min_maintenance_usd", 5 * WAD + 1, {}, BAD_MIN_MAINTENANCE),  # not whole micro-dollars
]

# (field, accepted value, other fields, whether the tiers must go first: a base rate at
# or above the first tier's is refused)
ACCEPTED = [
    ("max_leverage_bps", MIN_LEVERAGE_BPS, {}, False),
    ("max_leverage_bps", MAX_LEVERAGE_BPS, {}, False),  # with the Oracle's jump lowered to 1 %
    ("max_leverage_bps", BPS * BPS // params.ORACLE_CONFIG["max_jump_bps"], {}, False),  # at the default jump
    ("position_fee_bps", MAX_POSITION_FEE_BPS, {}, False),
    ("position_fee_bps", 0, {}, False),
    ("min_collateral_usd", WAD, {"min_maintenance_usd": WAD - MICRO_USD}, False),
    ("min_collateral_usd", MAX_MIN_COLLATERAL_USD, {}, False),
    ("max_open_interest_usd", MAX_OPEN_INTEREST, {}, False),
    ("max_open_interest_usd", 0, {}, False),
    ("reserve_factor_bps", MIN_RESERVE_FACTOR_BPS, {}, False),
    ("reserve_factor_bps", MAX_RESERVE_FACTOR_BPS, {}, False),
    ("borrowing_factor", MAX_RATE, {}, False),
    ("funding_factor", MAX_RATE, {}, False),
    ("max_funding_rate", MAX_RATE, {}, False),
    ("maintenance_margin_bps", MIN_MAINTENANCE_BPS, {}, False),
    (
        "maintenance_margin_bps", MAX_MAINTENANCE_BPS,
        {"max_leverage_bps": BPS * BPS // MAX_MAINTENANCE_BPS - 1}, True,
    ),
    ("maintenance_margin_bps", BPS * BPS // 500_000 - 1, {"max_leverage_bps": 500_000}, True),
    ("min_maintenance_usd", 10 * WAD - MICRO_USD, {"min_collateral_usd": 10 * WAD}, False),
    ("min_maintenance_usd", 0, {}, False),
]


def _id(case):
    return f"{case[0]}={case[1]}"


@pytest.mark.parametrize("field, value, others, reason", REFUSED, ids=map(_id, REFUSED))
def test_set_market_config__one_step_outside_bound__refused(
    env, deployer, cfg, field, value, others, reason
):
    bad = {**cfg, **others, field: value}
    call = env.configurator.set_market_config
    refused(env, (deployer,), reason, call, env.eth, bad, sender=deployer)


@pytest.mark.parametrize("field, value, others, no_tiers", ACCEPTED, ids=map(_id, ACCEPTED))
def test_set_market_config__at_bound__accepted_and_stored(
    env, deployer, cfg, risk, field, value, others, no_tiers
):
    edge = {**cfg, **others, field: value}
    r = {**risk, **NO_TIERS} if no_tiers else dict(risk)
    # the keeper's fee must stay within half the new margins (a rule of its own, tested below)
    r["liquidation_fee_usd"] = min(r["liquidation_fee_usd"], edge["min_maintenance_usd"] // 2 // MICRO_USD * MICRO_USD)
    r["liquidation_fee_bps"] = min(r["liquidation_fee_bps"], edge["maintenance_margin_bps"] // 2)
    if r != risk:
        env.configurator.set_risk_config(env.eth, r, sender=deployer)
    jump = env.oracle.config().max_jump_bps
    if edge["max_leverage_bps"] * jump > BPS * BPS:  # 100x needs a 1 % jump bound first
        o = {k: getattr(env.oracle.config(), k) for k in params.ORACLE_CONFIG}
        env.oracle.set_config({**o, "max_jump_bps": BPS * BPS // edge["max_leverage_bps"]}, sender=deployer)
    tx = env.configurator.set_market_config(env.eth, edge, sender=deployer)
    expect_applied(tx, env, env.eth, edge, r)
    assert env.configurator.max_leverage_bps() == max(edge["max_leverage_bps"], cfg["max_leverage_bps"])


# ---------------------------------------------------------------- risk config bounds

M = 1_000_000 * WAD
BAD_TIER, BAD_PNL = "config: bad tier", "config: bad pnl factor"
BAD_LIQ_FEE, BAD_CUT = "config: bad liquidation fee", "config: bad insurance cut"
HALF_FEE = "config: liquidation fee above half the maintenance"
THRESHOLDS, RATES = "tier_threshold_usd", "tier_maintenance_bps"
ADL, AFTER = "max_pnl_factor_for_adl_bps", "min_pnl_factor_after_adl_bps"
RISK_REFUSED = {
    # tier rates strictly above the base rate (50) and each other, at most 50 %
    "first_rate_equals_base": ({RATES: [50, 150, 250]}, BAD_TIER),
    "rates_equal": ({RATES: [100, 100, 250]}, BAD_TIER),
    "rates_decrease": ({RATES: [100, 150, 149]}, BAD_TIER),
    "rate_above_max": ({RATES: [100, 150, MAX_MAINTENANCE_BPS + 1]}, BAD_TIER),
    # thresholds strictly increase, in whole micro-dollars, at most 2**56 - 1 of them
    "thresholds_equal": ({THRESHOLDS: [M, M, 20 * M]}, BAD_TIER),
    "thresholds_decrease": ({THRESHOLDS: [M, 5 * M, 5 * M - MICRO_USD]}, BAD_TIER),
    "threshold_not_micro": ({THRESHOLDS: [M + 1, 5 * M, 20 * M]}, BAD_TIER),
    "threshold_above_max": ({THRESHOLDS: [M, 5 * M, MAX_TIER_THRESHOLD + MICRO_USD]}, BAD_TIER),
    # a zero threshold ends the table: its rate and every later tier must be zero
    "zero_threshold_with_rate": ({THRESHOLDS: [M, 5 * M, 0]}, BAD_TIER),
    "tier_after_end": ({THRESHOLDS: [M, 0, 20 * M], RATES: [100, 0, 250]}, BAD_TIER),
    "table_starts_empty": ({THRESHOLDS: [0, 5 * M, 0], RATES: [0, 150, 0]}, BAD_TIER),
    "liq_fee_usd_above_max": ({"liquidation_fee_usd": 100 * WAD + MICRO_USD}, BAD_LIQ_FEE),
    "liq_fee_usd_not_micro": ({"liquidation_fee_usd": 2 * WAD + 1}, BAD_LIQ_FEE),
    "liq_fee_bps_above_max": ({"liquidation_fee_bps": MAX_LIQUIDATION_FEE_BPS + 1}, BAD_LIQ_FEE),
    # at most half of the smallest maintenance ($5 floor, 50 bps base): payable on liquidation
    "liq_fee_usd_above_half_floor": ({"liquidation_fee_usd": 5 * WAD // 2 + MICRO_USD}, HALF_FEE),
    "liq_fee_bps_above_half_base": ({"liquidation_fee_bps": 26}, HALF_FEE),
    "cut_above_max": ({"insurance_cut_bps": MAX_INSURANCE_CUT_BPS + 1}, BAD_CUT),
    "traders_factor_zero": ({"max_pnl_factor_for_traders_bps": 0}, BAD_PNL),
    "traders_factor_above_max": ({"max_pnl_factor_for_traders_bps": BPS + 1}, BAD_PNL),
    "adl_factor_above_max": ({ADL: BPS + 1}, BAD_PNL),
    "min_after_equals_adl": ({ADL: 7_000, AFTER: 7_000}, BAD_PNL),
    "min_after_above_adl": ({ADL: 7_000, AFTER: 7_001}, BAD_PNL),
    "adl_factors_zero": ({ADL: 0, AFTER: 0}, BAD_PNL),
}

RISK_ACCEPTED = {
    "no_tiers": NO_TIERS,
    "one_tier_one_bps_above_base": {THRESHOLDS: [M, 0, 0], RATES: [51, 0, 0]},
    "two_tiers_one_micro_apart": {THRESHOLDS: [M, M + MICRO_USD, 0], RATES: [100, 101, 0]},
    "max_threshold_and_rate": {
        THRESHOLDS: [M, 5 * M, MAX_TIER_THRESHOLD], RATES: [100, 150, MAX_MAINTENANCE_BPS]
    },
    "liq_fee_usd_max": {"liquidation_fee_usd": MAX_LIQUIDATION_FEE_USD},
    "liq_fee_zero": {"liquidation_fee_usd": 0, "liquidation_fee_bps": 0},
    "liq_fee_half_of_the_margins": {"liquidation_fee_usd": 5 * WAD // 2, "liquidation_fee_bps": 25},
    "liq_fee_bps_max": {"liquidation_fee_bps": MAX_LIQUIDATION_FEE_BPS},
    "cut_max": {"insurance_cut_bps": MAX_INSURANCE_CUT_BPS},
    "traders_factor_one": {"max_pnl_factor_for_traders_bps": 1},
    "traders_factor_max": {"max_pnl_factor_for_traders_bps": MAX_PNL_FACTOR_BPS},
    "adl_max_min_just_below": {ADL: MAX_PNL_FACTOR_BPS, AFTER: MAX_PNL_FACTOR_BPS - 1},
    "adl_one_min_zero": {ADL: 1, AFTER: 0},
}


@pytest.mark.parametrize("case", list(RISK_REFUSED))
def test_set_risk_config__one_step_outside_bound__refused(env, deployer, risk, case):
    over, reason = RISK_REFUSED[case]
    call = env.configurator.set_risk_config
    refused(env, (deployer,), reason, call, env.eth, {**risk, **over}, sender=deployer)


# margins wide enough for the largest keeper fees: at most half the smallest maintenance
# (a 2 % base rate is above the default tiers: that case runs without a tier table)
RISK_NEEDS_MARKET = {
    "liq_fee_usd_max": ({"min_collateral_usd": 300 * WAD, "min_maintenance_usd": 200 * WAD}, {}),
    "liq_fee_bps_max": ({"maintenance_margin_bps": 200, "max_leverage_bps": 400_000}, NO_TIERS),
}


@pytest.mark.parametrize("case", list(RISK_ACCEPTED))
def test_set_risk_config__at_bound__accepted_and_stored(env, deployer, cfg, risk, case):
    market, tiers = RISK_NEEDS_MARKET.get(case, ({}, {}))
    if tiers:
        env.configurator.set_risk_config(env.eth, {**risk, **tiers}, sender=deployer)
    c = {**cfg, **market}
    if c != cfg:
        env.configurator.set_market_config(env.eth, c, sender=deployer)
    r = {**risk, **tiers, **RISK_ACCEPTED[case]}
    tx = env.configurator.set_risk_config(env.eth, r, sender=deployer)
    expect_applied(tx, env, env.eth, c, r)  # the market settings are kept
    assert risk_of(env.configurator, env.btc) == risk


def test_set_risk_config__unknown_market__refused(env, deployer, risk):
    unknown = max(env.markets.values()) + 1
    call = env.configurator.set_risk_config
    refused(env, (deployer,), "config: unknown market", call, unknown, risk, sender=deployer)


# ---------------------------------------------------------------- set_risk_config in Perp

NEW_TIERS = {THRESHOLDS: [10_000 * WAD, 250_000 * WAD, 3_000_000 * WAD], RATES: [75, 200, 400]}


def test_set_risk_config__new_tiers__perp_maintenance_follows_each_threshold(
    env, deployer, cfg, risk
):
    perp, eth = env.perp, env.eth
    old_sizes = [t + d for t in risk[THRESHOLDS] for d in (-1, 0, 1)]
    for size in old_sizes:
        assert perp.maintenance_margin(eth, size) == maintenance(cfg, risk, size)
    new = {**risk, **NEW_TIERS}

    env.configurator.set_risk_config(eth, new, sender=deployer)

    # one unit below a threshold the previous rate applies, at it and above the tier's
    expected_bps = {-1: [50, 75, 200], 0: [75, 200, 400], 1: [75, 200, 400]}
    for i, threshold in enumerate(NEW_TIERS[THRESHOLDS]):
        for d in (-1, 0, 1):
            size = threshold + d
            assert maintenance(cfg, new, size) == bps_of(size, expected_bps[d][i], True)
            assert perp.maintenance_margin(eth, size) == maintenance(cfg, new, size)
    # far above the last tier, and below the floor (min_maintenance_usd)
    assert perp.maintenance_margin(eth, 10**9 * WAD) == bps_of(10**9 * WAD, 400, True)
    floor_size = cfg["min_maintenance_usd"] * BPS // 50 - 1
    assert perp.maintenance_margin(eth, floor_size) == cfg["min_maintenance_usd"]
    assert perp.maintenance_margin(eth, 0) == cfg["min_maintenance_usd"]
    for size in old_sizes:  # the other market keeps its tiers
        assert perp.maintenance_margin(env.btc, size) == maintenance(cfg, risk, size)


def test_set_risk_config__table_ended_early__later_sizes_keep_last_rate(env, deployer, cfg, risk):
    r = {**risk, THRESHOLDS: [10_000 * WAD, 0, 0], RATES: [75, 0, 0]}
    env.configurator.set_risk_config(env.eth, r, sender=deployer)
    for size in (10_000 * WAD - 1, 10_000 * WAD, 5_000_000 * WAD, 10**9 * WAD):
        assert env.perp.maintenance_margin(env.eth, size) == maintenance(cfg, r, size)
    assert env.perp.maintenance_margin(env.eth, 10**9 * WAD) == bps_of(10**9 * WAD, 75, True)


def test_set_risk_config__insurance_cut__next_trade_fee_split(
    env, deployer, funded_trader, cfg, risk
):
    cut_bps = 1_234
    new = {**risk, "insurance_cut_bps": cut_bps}
    env.configurator.set_risk_config(env.eth, new, sender=deployer)
    push_fresh(env, env.eth, ETH_PRICE)
    size, collateral = 12_345 * WAD + 678, env.usd(1_000)
    fee = position_fee(size, cfg["position_fee_bps"], env.scale)
    cut = bps_of(fee, cut_bps, False)  # rounded down: the pool keeps the dust
    assert 0 < cut < fee
    pool, collateral_bucket, escrow, insurance = buckets(env.vault)

    open_position(env, funded_trader, env.eth, True, collateral, size)

    assert buckets(env.vault) == (
        pool + fee - cut, collateral_bucket + collateral - fee, escrow, insurance + cut
    )
