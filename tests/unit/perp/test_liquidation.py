"""Perp.liquidate and liquidate_batch: the health boundary (the $5 floor, the base rate and
each size tier, long and short), the same health function behind opening and withdrawing,
refusals, and the money of a liquidation that leaves more than the keeper fee (fee,
insurance cut, pool). The top-up, the bad-debt waterfall, self-liquidation, funding beyond
collateral and the batch are in test_liquidation_waterfall.py, which reuses the model below.

The protocol runs with params.RISK_CONFIG (insurance cut 10 %, liquidation fee $2 + 5 bps,
maintenance 0.5 % below $1M, then 1 % / 1.5 % / 2.5 % from $1M / $5M / $20M, at least $5)
and a $30M pool, so positions up to $20M fit the reserve. The model restates Perp.vy
(`_values`, `_maintenance`, `_liquidate`, `_cover`); token units unless named:

    maintenance (WAD)  max(ceil(size x bps / 10_000), min_maintenance_usd), bps the base rate
                       or the rate of the highest tier whose threshold <= size
    remaining (WAD)    collateral x scale + pnl + funding - ceil borrowing - ceil close fee;
                       liquidatable when remaining < maintenance
    left               collateral + pnl + funding received - borrowing - close fee - funding paid
                       (what a full close would pay; its negative is the shortfall)
    fee                floor((liquidation_fee_usd + floor(size x liq_fee_bps / 10_000)) / scale)
    from_position      min(max(left, 0), fee);  topup = fee - from_position
    cut                floor((close fee + max(left, 0) - from_position) x cut_bps / 10_000),
                       0 on a shortfall
    fund               insurance + cut;  from_insurance = min(topup, fund)
    cover              min(shortfall, fund - from_insurance)       (the LPs pay shortfall - cover)
    buckets            insurance += cut - from_insurance - cover; collateral -= collateral;
                       pool += collateral - fee - (cut - from_insurance - cover);
                       claimable += fee (credited to the fee receiver in the Vault, to
                       `claim` later: no token moves)
    bad_debt_total     += shortfall - cover

Time is pinned: a price is pushed at `ts` and the liquidation mined at `ts`, so the model
takes its indices from the stored index plus rate x elapsed (`indices_at`) and checks them
against what the transaction stored. Every move stays under the 2 % that turns the spread on.
"""

from __future__ import annotations

import pytest

from dataclasses import dataclass

from helpers import (
    BPS,
    Indices,
    MAX_UINT,
    Position,
    Refused,
    WAD,
    ZERO_ADDRESS,
    assert_refused,
    borrow_fee_wad,
    bps_of,
    buckets,
    ceil_div,
    config_of,
    decrease,
    fast_reverts,  # noqa: F401 (autouse fixture)
    funding_wad,
    increase,
    indices_at,
    indices_used,
    largest,
    left_of,
    liquidation_fee,
    open_position,
    pending,
    pin,
    pnl_wad,
    position_fee,
    push_fresh,
    refused,
    risk_of,
    to_tokens,
)
from perpool import params
from perpool.events import settled as decode_settled

BASE = params.LOCAL_MARKETS["ETH"]  # the seeded price, anchor of the oracle's window
ODD = 123_456_789_012_345  # wei of USD that make the roundings matter
POOL_USD = 30_000_000
LIQUIDATABLE = "perp: would be liquidatable"
SIDES = pytest.mark.parametrize("is_long", [True, False], ids=["long", "short"])
SIZE = 100_000 * WAD + ODD  # the usual position: $100k at ~48x on $2,200
COLLATERAL_USD = 2_200
# the usual position opens 1.9 % on its winning side of the anchor, so a move of up to 3.8 %
# against it stays within the 2 % that turns the spread on
ENTRY = {True: BASE * 10_190 // BPS, False: BASE * 9_810 // BPS}


# ---------------------------------------------------------------- the model


def maintenance(size: int, cfg, risk) -> int:
    bps = cfg["maintenance_margin_bps"]
    for threshold, rate in zip(risk["tier_threshold_usd"], risk["tier_maintenance_bps"]):
        if threshold == 0 or size < threshold:
            break
        bps = rate
    return max(bps_of(size, bps, True), cfg["min_maintenance_usd"])


def values(pos: Position, is_long: bool, price: int, idx: Indices, cfg, risk, scale: int) -> dict:
    """Perp._values: PositionValues as a dict."""
    v = {
        "pnl": pnl_wad(pos.size_usd, pos.size_tokens, price, is_long),
        "borrowing_fee": borrow_fee_wad(pos, idx),
        "funding": funding_wad(pos, is_long, idx),
        "close_fee": bps_of(pos.size_usd, cfg["position_fee_bps"], True),
        "maintenance": maintenance(pos.size_usd, cfg, risk),
    }
    v["remaining"] = (
        pos.collateral * scale + v["pnl"] + v["funding"] - v["borrowing_fee"] - v["close_fee"]
    )
    return v


def healthy(pos, is_long, price, idx, cfg, risk, scale) -> bool:
    v = values(pos, is_long, price, idx, cfg, risk, scale)
    return v["remaining"] >= v["maintenance"]


def check(pos, is_long, price, idx, cfg, risk, scale) -> None:
    """Perp._check_position with the tiered margin."""
    if pos.collateral * scale < cfg["min_collateral_usd"]:
        raise Refused("perp: collateral below min")
    if pos.size_usd * BPS > cfg["max_leverage_bps"] * pos.collateral * scale:
        raise Refused("perp: leverage too high")
    if not healthy(pos, is_long, price, idx, cfg, risk, scale):
        raise Refused("perp: would be liquidatable")


def predict_now(env, pos, is_long, price, idx, cfg, risk) -> "Liq":
    """predict_liquidation with the insurance fund as it is now."""
    insurance = env.vault.insurance_amount()
    return predict_liquidation(pos, is_long, price, idx, cfg, risk, env.scale, insurance)


def price_for_left(pos, is_long, target, idx, cfg, scale) -> int:
    """A price at which a full close leaves about `target` token units."""
    borrow, paid, received = pending(pos, is_long, idx, scale)
    fee = position_fee(pos.size_usd, cfg["position_fee_bps"], scale)
    pnl = (target - pos.collateral + borrow + fee + paid - received) * scale
    if is_long:
        return (pos.size_usd + pnl) * WAD // pos.size_tokens
    return (pos.size_usd - pnl) * WAD // pos.size_tokens


@dataclass(frozen=True)
class Liq:
    price: int
    remaining: int  # WAD
    maintenance: int  # WAD
    left: int
    fee: int
    from_position: int
    cut: int
    from_insurance: int
    cover: int
    shortfall: int
    collateral: int
    size: int

    @property
    def from_lps(self) -> int:
        return self.shortfall - self.cover

    @property
    def insurance_delta(self) -> int:
        return self.cut - self.from_insurance - self.cover

    @property
    def pool_delta(self) -> int:
        return self.collateral - self.fee - self.insurance_delta


def predict_liquidation(pos, is_long, price, idx, cfg, risk, scale, insurance) -> Liq:
    v = values(pos, is_long, price, idx, cfg, risk, scale)
    if v["remaining"] >= v["maintenance"]:
        raise Refused("perp: position healthy")
    left = left_of(pos, is_long, price, idx, cfg, scale)
    close_fee = position_fee(pos.size_usd, cfg["position_fee_bps"], scale)
    fee = liquidation_fee(pos.size_usd, risk, scale)
    equity, shortfall = max(left, 0), max(-left, 0)
    from_position = min(equity, fee)
    cut = 0
    if shortfall == 0:
        cut = bps_of(close_fee + equity - from_position, risk["insurance_cut_bps"], False)
    fund = insurance + cut
    from_insurance = min(fee - from_position, fund)
    cover = min(shortfall, fund - from_insurance)
    return Liq(
        price, v["remaining"], v["maintenance"], left, fee, from_position, cut, from_insurance,
        cover, shortfall, pos.collateral, pos.size_usd,
    )


# ---------------------------------------------------------------- fixtures and steps


@pytest.fixture(scope="module")
def renv(project, deployer, keeper, lp, chain):
    """The default risk settings and a $30M pool."""
    from helpers import LP_DEPOSIT_USD, build_env

    env = build_env(project, deployer, keeper, lp, chain, 6, risk_config=params.RISK_CONFIG)
    env.fund(lp, POOL_USD)
    env.vault.deposit(env.usd(POOL_USD - LP_DEPOSIT_USD), 0, lp, sender=lp)
    return env


@pytest.fixture(scope="module")
def alice(renv, trader):
    renv.fund(trader, 2_000_000)
    return trader


@pytest.fixture(scope="module")
def bob(renv, accounts):
    renv.fund(accounts[7])
    return accounts[7]


@pytest.fixture(scope="module")
def carol(renv, accounts):
    renv.fund(accounts[8])
    return accounts[8]


@pytest.fixture(scope="module")
def liquidator(accounts):
    return accounts[9]


@pytest.fixture(scope="module")
def cfg(renv):
    return config_of(renv.configurator, renv.eth)


@pytest.fixture(scope="module")
def risk(renv):
    return risk_of(renv.configurator, renv.eth)


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(renv, alice, bob, carol, liquidator, cfg, risk, deployer, lp):
    """Create the module-scoped fixtures before any test (Ape's snapshots stay in order)."""


def open_at(env, account, is_long, collateral, size, price=BASE) -> Position:
    push_fresh(env, env.eth, price)
    pin(env)
    open_position(env, account, env.eth, is_long, collateral, size)
    return Position.of(env.perp.get_position(account, env.eth, is_long))


def next_second(env) -> tuple[int, Indices]:
    """The next second and the indices a transaction mined then accrues to (one side open)."""
    ts = env.chain.blocks.head.timestamp + 1
    return ts, indices_at(env, env.eth, ts)


def push_again(env, price: int) -> None:
    """Push `price` in a block at the head's time, observed a second after the last price
    (within the future skew), so every index stays where it was."""
    ts = pin(env)
    observed = env.oracle.price_timestamp(env.eth) + 1
    env.oracle.set_prices([env.eth], [price], observed, sender=env.keeper)
    pin(env, ts)


def no_spread(env, price: int) -> None:
    assert abs(price - BASE) * BPS <= 200 * BASE  # under the spread threshold
    assert env.oracle.get_price(env.eth, True) == env.oracle.get_price(env.eth, False) == price


def set_insurance(env, target: int, lp, deployer) -> None:
    now = env.vault.insurance_amount()
    pin(env)
    if target > now:
        env.vault.fund_insurance(target - now, sender=lp)
    elif target < now:
        env.vault.withdraw_insurance(now - target, deployer, sender=deployer)
    assert env.vault.insurance_amount() == target


def snapshot(env, receiver) -> dict:
    return {
        "buckets": buckets(env.vault),
        "receiver": env.token.balanceOf(receiver),
        "vault": env.token.balanceOf(env.vault),
        "claimable": env.vault.claimable(receiver),
        "claimable_total": env.vault.claimable_amount(),
        "bad_debt": env.perp.bad_debt_total(),
        "reserved": env.vault.reserved_amount(),
        "open_interest": sum(env.perp.open_interest(env.eth, side)[0] for side in (True, False)),
    }


def reserve_tokens(env, open_interest: int) -> int:
    """A market's reserve in token units: open interest x reserve factor, rounded up twice."""
    factor = env.configurator.configs(env.eth).reserve_factor_bps
    return to_tokens(bps_of(open_interest, factor, True), env.scale, True)


def expect_liquidation(env, tx, liq: Liq, account, is_long, receiver, before) -> None:
    """Event, BadDebt, buckets, balances, totals and the closed position match the model."""
    perp, vault = env.perp, env.vault
    key = bytes(perp.position_key(account, env.eth, is_long))
    [ev] = tx.decode_logs(perp.Liquidation)
    assert bytes(ev.key) == key and ev.account == account.address
    assert (ev.market, bool(ev.is_long), ev.fee_receiver) == (env.eth, is_long, receiver.address)
    assert (ev.price, ev.size_usd, ev.collateral) == (liq.price, liq.size, liq.collateral)
    assert (ev.remaining, ev.maintenance) == (liq.remaining, liq.maintenance)
    assert (ev.fee, ev.fee_from_insurance) == (liq.fee, liq.from_insurance)
    assert ev.insurance_cut == liq.cut
    bad = tx.decode_logs(perp.BadDebt)
    if liq.shortfall:
        [b] = bad
        assert (bytes(b.key), b.market) == (key, env.eth)
        assert (b.shortfall, b.from_insurance) == (liq.shortfall, liq.cover)
        assert b.from_lps == liq.from_lps
    else:
        assert list(bad) == []
    pool, collateral, escrow, insurance = before["buckets"]
    assert buckets(vault) == (
        pool + liq.pool_delta, collateral - liq.collateral, escrow, insurance + liq.insurance_delta
    )
    # the fee is credited in the Vault, not transferred: no token moves
    assert env.token.balanceOf(receiver) == before["receiver"]
    assert env.token.balanceOf(vault) == before["vault"]
    assert vault.claimable(receiver) == before["claimable"] + liq.fee
    assert vault.claimable_amount() == before["claimable_total"] + liq.fee
    [settled] = [decode_settled(x) for x in tx.decode_logs(vault.Settled)]
    assert settled.credited == liq.fee
    assert (settled.pool_delta, settled.insurance_delta) == (liq.pool_delta, liq.insurance_delta)
    assert settled.collateral_delta == -liq.collateral
    assert perp.bad_debt_total() == before["bad_debt"] + liq.from_lps
    assert tuple(perp.get_position(account, env.eth, is_long))[:3] == (0, 0, 0)
    oi = before["open_interest"]
    released = reserve_tokens(env, oi) - reserve_tokens(env, oi - liq.size)
    assert vault.reserved_amount() == before["reserved"] - released
    assert vault.reserved_amount() == to_tokens(env.reader.total_reserved_usd(), env.scale, True)
    assert vault.is_solvent()


def liquidate(env, account, is_long, receiver):
    pin(env)
    return env.perp.liquidate(account, env.eth, is_long, receiver, sender=receiver)


# ---------------------------------------------------------------- the boundary

BOUNDARY_CASES = [
    # size (WAD), collateral ($), the maintenance rate in bps (None: the $5 floor)
    pytest.param(800 * WAD + ODD, 20, None, id="floor"),
    pytest.param(SIZE, 2_500, 50, id="base"),
    pytest.param(1_000_000 * WAD + ODD, 25_000, 100, id="tier1"),
    pytest.param(5_000_000 * WAD + ODD, 120_000, 150, id="tier2"),
    pytest.param(20_000_000 * WAD + ODD, 600_000, 250, id="tier3"),
]


def test_maintenance_margin__around_each_threshold__rate_switches_at_the_threshold(renv, cfg, risk):
    perp = renv.perp
    assert perp.maintenance_margin(renv.eth, 0) == cfg["min_maintenance_usd"] == 5 * WAD
    # the floor holds up to $1,000 (0.5 % of it is $5)
    assert perp.maintenance_margin(renv.eth, 1_000 * WAD - 1) == 5 * WAD
    just_above = 1_000 * WAD + 1
    assert perp.maintenance_margin(renv.eth, just_above) == ceil_div(just_above * 50, BPS)
    below = cfg["maintenance_margin_bps"]
    for threshold, bps in zip(risk["tier_threshold_usd"], risk["tier_maintenance_bps"]):
        below_it = ceil_div((threshold - 1) * below, BPS)
        assert perp.maintenance_margin(renv.eth, threshold - 1) == below_it
        assert perp.maintenance_margin(renv.eth, threshold) == threshold * bps // BPS
        for size in (threshold - 1, threshold, threshold + ODD):
            assert perp.maintenance_margin(renv.eth, size) == maintenance(size, cfg, risk)
        below = bps


@pytest.mark.parametrize("size, collateral_usd, rate", BOUNDARY_CASES)
@SIDES
def test_liquidate__at_the_boundary_then_one_wei_past__refused_healthy_then_liquidates(
    renv, alice, liquidator, cfg, risk, is_long, size, collateral_usd, rate
):
    env, perp = renv, renv.perp
    pos = open_at(env, alice, is_long, env.usd(collateral_usd), size)
    expected_margin = max(ceil_div(size * rate, BPS), 5 * WAD) if rate else 5 * WAD
    assert perp.maintenance_margin(env.eth, size) == maintenance(size, cfg, risk) == expected_margin
    ts, idx = next_second(env)

    # the boundary: the last healthy price (longs healthy above it, shorts below)
    def ok(p):
        return healthy(pos, is_long, p, idx, cfg, risk, env.scale)

    if is_long:
        edge = largest(lambda p: not ok(p), BASE * 98 // 100, BASE) + 1
        past = edge - 1
    else:
        edge = largest(ok, BASE, BASE * 102 // 100)
        past = edge + 1
    assert push_fresh(env, env.eth, edge) == ts
    no_spread(env, edge)

    v = perp.position_values(alice, env.eth, is_long, edge)
    model = values(pos, is_long, edge, idx, cfg, risk, env.scale)
    assert {k: getattr(v, k) for k in model} == model
    assert v.borrowing_fee > 0  # a second of borrowing is in it
    # one wei of price moves the value by about size_tokens / WAD
    assert 0 <= v.remaining - v.maintenance <= ceil_div(pos.size_tokens, WAD)
    info = env.reader.position_info(alice, env.eth, is_long)
    assert info.liquidation_price == edge and not info.is_liquidatable
    assert not perp.is_liquidatable(alice, env.eth, is_long)
    pin(env)
    assert_refused(
        env, (alice, liquidator), "perp: position healthy",
        perp.liquidate, alice, env.eth, is_long, liquidator, sender=liquidator,
    )

    push_again(env, past)
    assert perp.is_liquidatable(alice, env.eth, is_long)
    beyond = perp.position_values(alice, env.eth, is_long, past)
    assert beyond.remaining < beyond.maintenance == expected_margin
    liq = predict_now(env, pos, is_long, past, idx, cfg, risk)
    assert liq.remaining == beyond.remaining
    before = snapshot(env, liquidator)

    tx = liquidate(env, alice, is_long, liquidator)

    assert indices_used(env, env.eth) == idx
    expect_liquidation(env, tx, liq, alice, is_long, liquidator, before)
    assert liq.shortfall == 0 and liq.from_position == liq.fee  # margin left: no top-up


# ---------------------------------------------------------------- the same check on open, withdraw


@SIDES
def test_increase_position__top_tier_at_40x__refused_would_be_liquidatable(
    renv, alice, cfg, risk, is_long
):
    """40x is within max leverage (50x) but its 2.5 % margin is below the top tier's."""
    env = renv
    size, collateral = 20_000_000 * WAD, env.usd(500_000)
    ts = push_fresh(env, env.eth, BASE)
    idx = indices_at(env, env.eth, ts)
    fee_bps = cfg["position_fee_bps"]
    new = increase(Position(), is_long, collateral, size, BASE, idx, fee_bps, env.scale).position
    assert refused(check, new, is_long, BASE, idx, cfg, risk, env.scale) == LIQUIDATABLE
    assert new.size_usd * BPS <= cfg["max_leverage_bps"] * new.collateral * env.scale
    pin(env)
    assert_refused(
        env, (alice,), LIQUIDATABLE, open_position, env, alice, env.eth, is_long, collateral, size,
    )


@SIDES
def test_increase_position__growing_into_the_top_tier__refused_at_threshold_accepted_one_wei_below(
    renv, alice, cfg, risk, is_long
):
    env, perp = renv, renv.perp
    pos = open_at(env, alice, is_long, env.usd(530_000), 19_000_000 * WAD + ODD)
    idx = indices_at(env, env.eth, pin(env))
    threshold = risk["tier_threshold_usd"][2]
    fee_bps = cfg["position_fee_bps"]

    def grown(delta):
        return increase(pos, is_long, 0, delta, BASE, idx, fee_bps, env.scale).position

    to_tier = threshold - pos.size_usd
    assert refused(check, grown(to_tier), is_long, BASE, idx, cfg, risk, env.scale) == LIQUIDATABLE
    assert refused(check, grown(to_tier - 1), is_long, BASE, idx, cfg, risk, env.scale) is None
    assert_refused(
        env, (alice,), LIQUIDATABLE, open_position, env, alice, env.eth, is_long, 0, to_tier
    )
    pin(env)
    open_position(env, alice, env.eth, is_long, 0, to_tier - 1)
    assert Position.of(perp.get_position(alice, env.eth, is_long)) == grown(to_tier - 1)
    assert perp.maintenance_margin(env.eth, threshold - 1) == ceil_div((threshold - 1) * 150, BPS)


@SIDES
def test_decrease_position__withdraw_in_the_top_tier__largest_by_the_tiered_margin_one_more_refused(
    renv, alice, cfg, risk, is_long
):
    env, perp = renv, renv.perp
    pos = open_at(env, alice, is_long, env.usd(600_000) + 3, 20_000_000 * WAD + ODD)
    ts, idx = next_second(env)
    push_fresh(env, env.eth, BASE)
    fee_bps, worst = cfg["position_fee_bps"], 0 if is_long else MAX_UINT

    def reason(withdraw):
        try:
            change = decrease(pos, is_long, withdraw, 0, BASE, idx, fee_bps, env.scale)
            check(change.position, is_long, BASE, idx, cfg, risk, env.scale)
        except Refused as e:
            return e.reason
        return None

    w = largest(lambda x: reason(x) is None, 0, pos.collateral)
    assert reason(w + 1) == LIQUIDATABLE
    # the leverage bound alone (50x: $400k) would allow far more: the tier's margin binds
    assert w + 1 < pos.collateral - env.usd(400_000)
    pin(env)
    assert_refused(
        env, (alice,), LIQUIDATABLE,
        perp.decrease_position, env.eth, is_long, w + 1, 0, worst, alice, sender=alice,
    )
    pin(env)
    perp.decrease_position(env.eth, is_long, w, 0, worst, alice, sender=alice)
    expected = decrease(pos, is_long, w, 0, BASE, idx, fee_bps, env.scale).position
    assert Position.of(perp.get_position(alice, env.eth, is_long)) == expected


# ---------------------------------------------------------------- refusals


def test_liquidate__no_position__refused(renv, alice, bob, liquidator):
    env, perp = renv, renv.perp
    pos = open_usual(env, alice, True)
    for account, is_long in ((bob, True), (alice, False)):  # never opened
        assert_refused(
            env, (alice, bob, liquidator), "perp: no position",
            perp.liquidate, account, env.eth, is_long, liquidator, sender=liquidator,
        )
    pin(env)
    perp.decrease_position(env.eth, True, 0, pos.size_usd, 0, alice, sender=alice)
    assert_refused(  # closed
        env, (alice, bob, liquidator), "perp: no position",
        perp.liquidate, alice, env.eth, True, liquidator, sender=liquidator,
    )


def open_usual(env, account, is_long) -> Position:
    return open_at(env, account, is_long, env.usd(COLLATERAL_USD), SIZE, ENTRY[is_long])


def underwater(env, account, is_long, cfg, risk, drop_bps=170):
    """Open the usual position and move the price `drop_bps` against it (liquidatable)."""
    pos = open_usual(env, account, is_long)
    entry = ENTRY[is_long]
    price = entry * (BPS - drop_bps) // BPS if is_long else entry * (BPS + drop_bps) // BPS
    ts = push_fresh(env, env.eth, price)
    pin(env)
    assert env.perp.is_liquidatable(account, env.eth, is_long)
    return pos, price, ts


@SIDES
def test_liquidate__zero_fee_receiver__refused(renv, alice, liquidator, cfg, risk, is_long):
    env = renv
    underwater(env, alice, is_long, cfg, risk)
    assert_refused(
        env, (alice, liquidator), "perp: zero receiver",
        env.perp.liquidate, alice, env.eth, is_long, ZERO_ADDRESS, sender=liquidator,
    )


@SIDES
def test_liquidate__price_older_than_max_age__refused_stale(
    renv, alice, liquidator, cfg, risk, is_long
):
    env = renv
    _, _, ts = underwater(env, alice, is_long, cfg, risk)
    pin(env, ts + env.oracle.config().max_price_age + 1)
    assert_refused(
        env, (alice, liquidator), "oracle: stale price",
        env.perp.liquidate, alice, env.eth, is_long, liquidator, sender=liquidator,
    )


# ---------------------------------------------------------------- money


@SIDES
def test_liquidate__equity_above_fee__fee_to_receiver_cut_to_insurance_rest_to_pool(
    renv, alice, liquidator, cfg, risk, is_long
):
    env = renv
    pos, price, ts = underwater(env, alice, is_long, cfg, risk)
    no_spread(env, price)
    idx = indices_at(env, env.eth, ts)
    liq = predict_now(env, pos, is_long, price, idx, cfg, risk)
    # the formulas with the numbers: $2 + 5 bps of the size, rounded down to token units
    fee_wad = 2 * WAD + SIZE * 5 // BPS
    assert liq.fee == fee_wad // env.scale and fee_wad % env.scale != 0
    close_fee = ceil_div(ceil_div(SIZE * cfg["position_fee_bps"], BPS), env.scale)
    assert liq.left > liq.fee
    assert liq.cut == (close_fee + liq.left - liq.fee) * 1_000 // BPS
    assert (liq.from_insurance, liq.cover, liq.shortfall) == (0, 0, 0)
    assert liq.pool_delta == pos.collateral - liq.fee - liq.cut
    before = snapshot(env, liquidator)

    tx = liquidate(env, alice, is_long, liquidator)

    assert indices_used(env, env.eth) == idx
    expect_liquidation(env, tx, liq, alice, is_long, liquidator, before)
    assert env.perp.open_interest(env.eth, is_long) == (0, 0)
    assert env.vault.reserved_amount() == 0
