"""keepers.decide.adl without a chain: the RiskEngine's score, trigger and clamp restated,
a walk derived by hand, and hypothesis properties of the planned walk (never below the
target in the model, in ranking order, empty when not triggered)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keepers.decide.adl import (
    BPS,
    MICRO_USD,
    WAD,
    Candidate,
    SideState,
    after_close,
    at_or_above_target,
    clamp,
    factor_bps,
    plan,
    rank,
    score,
    score_of,
    size_limit,
    triggered,
)

UNIT = 10**6  # one dollar of the 6-decimal collateral token
SCALE = 10**12  # WAD per token unit
MARGIN = 4 * SCALE + MICRO_USD  # the clamp's rounding margin for a 6-decimal token


def side(**overrides: int) -> SideState:
    """S = $100 on P = $1,000: 10 %, over a 5 % trigger; target 3 %, fee 0.1 %."""
    base = SideState(
        pnl=100 * WAD,
        pool=1_000 * WAD,
        trigger_bps=500,
        target_bps=300,
        traders_cap_bps=9_000,
        position_fee_bps=10,
        token_scale=SCALE,
    )
    return replace(base, **overrides)


def position(key: int, size: int, collateral: int, pnl: int, **fields: int) -> Candidate:
    """Sizes and PnL in dollars, collateral in dollars of the token."""
    return Candidate(
        key=key,
        account=f"0x{key:040x}",
        size=size * WAD,
        collateral=collateral * UNIT,
        pnl=pnl * WAD,
        **fields,
    )


# ---------------------------------------------------------------- the formulas


def test_score__pnl_percent_times_leverage__wad_signed_rounded_toward_zero():
    assert score(1_000 * WAD, 100 * UNIT, 60 * WAD, SCALE) == 6 * WAD  # 60 % x 10x
    assert score(1_000 * WAD, 100 * UNIT, -60 * WAD, SCALE) == -6 * WAD
    assert score(7, 3, 10, 1) == (10 * WAD // 3) * 7 // 3
    assert score(7, 3, -10, 1) == -((10 * WAD // 3) * 7 // 3)  # toward zero, not floor
    assert score(WAD, 0, WAD, SCALE) == WAD * WAD * WAD  # collateral 0 counts as 1 wei


def test_triggered__strict_and_never_without_profit():
    assert triggered(501, 10_000, 500) and not triggered(500, 10_000, 500)
    assert not triggered(0, 0, 0) and not triggered(-1, 10, 0)
    assert triggered(1, 0, 10_000)  # an empty pool with a profit: the contract's max factor
    assert (
        factor_bps(1, 0) == 2**256 - 1
        and factor_bps(-5, 10) == 0
        and factor_bps(299, 10_000) == 299
    )


def test_clamp__hand_derived__the_contracts_formula():
    """Z = $500, R = $30 on S = $100, P = $1,000, f = 3 %, fee 0.1 %, no cap (cap $900):
    d = (S 10^4 - f (P + margin)) Z // (R 10^4 - f R + ceil(f fee Z / 10^4))."""
    c = position(1, 500, 25, 30)
    numerator = 100 * WAD * BPS - 300 * (1_000 * WAD + MARGIN)
    denominator = 30 * WAD * BPS - 300 * 30 * WAD + 300 * 10 * 500 * WAD // BPS
    assert clamp(side(), c) == numerator * 500 * WAD // denominator
    assert 1_202 * WAD < clamp(side(), c) < 1_203 * WAD  # more than the position: a full close
    assert size_limit(side(), c) == 500 * WAD
    # pending borrowing joins the pool, received funding leaves it
    fees = position(1, 500, 25, 30, borrowing_fee=7 * WAD, funding=2 * WAD)
    numerator = 100 * WAD * BPS - 300 * (1_005 * WAD + MARGIN)
    assert clamp(side(), fees) == numerator * 500 * WAD // denominator


def test_clamp__above_the_traders_cap__paid_scaled_by_cap_over_side_pnl():
    """A 5 % traders' cap ($50 < S = $100): paid = f R cap // S = 300 x $30 x 50 // 100."""
    state = side(traders_cap_bps=500)
    c = position(1, 500, 25, 30)
    paid = 300 * 30 * WAD * (50 * WAD) // (100 * WAD)
    denominator = 30 * WAD * BPS - paid + 300 * 10 * 500 * WAD // BPS
    assert (
        clamp(state, c)
        == (100 * WAD * BPS - 300 * (1_000 * WAD + MARGIN)) * 500 * WAD // denominator
    )
    s_after, p_after = after_close(state, c, 500 * WAD)
    assert (s_after, p_after) == (
        70 * WAD,
        1_000 * WAD - 15 * WAD + WAD // 2,
    )  # $30 x 1/2 paid, $0.50 fee


def test_clamp__zero_when_losing_or_at_the_target():
    assert clamp(side(), position(1, 500, 25, -30)) == 0
    assert clamp(side(), position(1, 500, 25, 0)) == 0
    # S 10^4 = f (P + borrowing + margin): nothing may close
    at_target = side(pnl=30 * WAD + 3 * MARGIN // 100)
    assert clamp(at_target, position(1, 500, 25, 30)) == 0
    assert size_limit(side(pnl=50 * WAD), position(1, 500, 25, 30)) == 0  # 5 %: not triggered


def test_after_close__pro_rata_profit_rounded_up__fees_to_the_pool_less_the_cut():
    state = side(insurance_cut_bps=1_000)
    c = position(1, 3, 1, 1, borrowing_fee=5, funding=-7)  # $3 with $1 profit: 1/3 rounds up
    s_after, p_after = after_close(state, c, WAD)
    realised = -(-WAD // 3)
    fee = -(-WAD * 10 // BPS)
    assert (s_after, p_after) == (
        100 * WAD - realised,
        1_000 * WAD - realised + fee - fee // 10 + 5 + 7,
    )
    with pytest.raises(ValueError):
        after_close(state, c, 4 * WAD)


def test_plan__hand_derived_walk__full_close_then_the_tie_by_key_then_stop_at_the_target():
    """Scores (PnL % x leverage): B 120 % x 20x = 24, A and E 60 % x 10x = 6 (a tie: E's key
    is lower), C 1 % x 2x = 0.02, D a loser. S = $100, P = $1,000, trigger 5 %, target 3 %.

    1. B: clamp ~$1,202 > $500: the whole position. S = 100 - 30 = $70, P = 1,000 - 30 + 0.5
       (fee) = $970.50: 7.2 %, still triggered.
    2. E (not A: the tie goes to the lower key): d = (70 10^4 - 3 % ... ) as below, ~$702.13
       of $1,000; S ~$27.87, P ~$929.07: 3.00 %, at the target and below the trigger.
    3. Stop: below the trigger, A and C untouched."""
    a, e = position(0xA0, 1_000, 100, 60), position(0x0E, 1_000, 100, 60)
    b, c, d = (
        position(0xB0, 500, 25, 30),
        position(0xC0, 2_000, 1_000, 10),
        position(0xD0, 2_000, 1_000, -5),
    )
    assert [x.account for x in rank([a, b, c, d, e], SCALE)] == [
        b.account,
        e.account,
        a.account,
        c.account,
    ]

    walk = plan(side(), [a, b, c, d, e])

    assert [s.candidate for s in walk.steps] == [b, e]
    first, second = walk.steps
    assert (first.score, first.size) == (24 * WAD, 500 * WAD)
    assert (first.pnl_after, first.pool_after) == (70 * WAD, 970 * WAD + WAD // 2)
    numerator = 70 * WAD * BPS - 300 * (970 * WAD + WAD // 2 + MARGIN)
    denominator = 60 * WAD * BPS - 300 * 60 * WAD + 300 * 10 * 1_000 * WAD // BPS
    expected = numerator * 1_000 * WAD // denominator
    assert second.score == 6 * WAD and second.size == expected
    assert 702 * WAD < expected < 703 * WAD
    realised = -(-60 * WAD * expected // (1_000 * WAD))
    fee = -(-expected * 10 // BPS)
    assert (second.pnl_after, second.pool_after) == (
        70 * WAD - realised,
        970 * WAD + WAD // 2 - realised + fee,
    )
    assert factor_bps(second.pnl_after, second.pool_after) == 300
    assert at_or_above_target(second.pnl_after, second.pool_after, 300)
    assert walk.stop == "below trigger" and (walk.pnl_after, walk.pool_after) == (
        second.pnl_after,
        second.pool_after,
    )


def test_plan__not_triggered__empty():
    walk = plan(side(pnl=50 * WAD), [position(1, 500, 25, 30)])
    assert walk.steps == () and walk.stop == "not triggered"


def test_plan__max_steps__stops_early():
    """Three small positions that cannot bring S = $100 down to 3 % between them."""
    small = [position(k, 10, 1, 1) for k in (3, 1, 2)]
    walk = plan(side(), small, max_steps=2)
    assert [s.candidate.key for s in walk.steps] == [1, 2] and walk.stop == "max steps"
    assert plan(side(), small).stop == "exhausted"


def test_plan__clamp_zero__stops_without_skipping_down_the_ranking():
    """S = $50.01 on $1,000 (5.001 %, over the 5 % trigger), target 4.99 %. The top
    position's $3 of pending borrowing would join the pool on its close, and 4.99 % of
    $1,003 > $50.01: its clamp is 0, and the walk stops there even though a position with no
    pending fee could close."""
    state = side(pnl=50_010 * WAD // 1_000, target_bps=499)
    old = position(1, 1_000, 10, 30, borrowing_fee=3 * WAD)
    fresh = position(2, 1_000, 100, 30)
    walk = plan(state, [old, fresh])
    assert walk.steps == () and walk.stop == "clamp 0"
    assert clamp(state, fresh) > 0


def test_plan__chain_scores__rank_by_them():
    """A score read from the chain overrides the restatement (the contract decides)."""
    low, high = position(1, 1_000, 100, 60, score=1), position(2, 1_000, 100, 1, score=2)
    assert plan(side(), [low, high]).steps[0].candidate.key == 2
    assert score_of(low, SCALE) == 1 and score_of(position(1, 1_000, 100, 60), SCALE) == 6 * WAD


# ---------------------------------------------------------------- properties

_keys = st.lists(st.integers(0, 2**256 - 1), min_size=0, max_size=8, unique=True)


@st.composite
def sides(draw) -> tuple[SideState, list[Candidate]]:
    """A side with up to 8 positions of $1e-6 to $1e12, any leverage, pending fees, and any
    settings the Configurator accepts (target below the trigger)."""
    scale = draw(st.sampled_from([1, 10**12]))
    target = draw(st.integers(0, 9_999))
    state = SideState(
        pnl=draw(st.integers(1, 10**30)),
        pool=draw(st.integers(0, 10**31)),
        trigger_bps=draw(st.integers(target + 1, 10_000)),
        target_bps=target,
        traders_cap_bps=draw(st.integers(1, 10_000)),
        position_fee_bps=draw(st.integers(0, 1_000)),
        token_scale=scale,
        insurance_cut_bps=draw(st.integers(0, 5_000)),
    )
    candidates = []
    for key in draw(_keys):
        candidates.append(
            Candidate(
                key=key,
                account=f"0x{key % 2**160:040x}",
                size=draw(st.integers(1, 10**30)),
                collateral=draw(st.integers(0, 10**30 // scale)),
                pnl=draw(st.integers(-(10**30), 10**30)),
                borrowing_fee=draw(st.integers(0, 10**27)),
                funding=draw(st.integers(-(10**27), 10**27)),
            )
        )
    if draw(st.booleans()) and candidates:  # a tie on the score, broken by key
        first = candidates[0]
        candidates.append(replace(first, key=(first.key + 1) % 2**256, account="0xtie"))
    return state, candidates


@st.composite
def crowded_sides(draw) -> tuple[SideState, list[Candidate]]:
    """A side past its trigger the way the chain makes one: a pool of $1k-$1bn, positions
    of 1-50x whose profits (less some losers) make S, pending fees small against the pool;
    the walk mostly ends on a partial close at the target."""
    scale = draw(st.sampled_from([1, 10**12]))
    pool = draw(st.integers(1_000, 10**9)) * WAD
    candidates = []
    for key in draw(st.lists(st.integers(0, 2**256 - 1), min_size=1, max_size=8, unique=True)):
        size = draw(st.integers(pool // 1_000, pool))
        leverage_bps = draw(st.integers(10_000, 500_000))
        candidates.append(
            Candidate(
                key=key,
                account=f"0x{key % 2**160:040x}",
                size=size,
                collateral=size * BPS // leverage_bps // scale,
                pnl=size * draw(st.integers(-2_000, 5_000)) // BPS,
                borrowing_fee=draw(st.integers(0, size // 1_000)),
                funding=draw(st.integers(-(size // 1_000), size // 1_000)),
            )
        )
    profit = sum(c.pnl for c in candidates if c.pnl > 0)
    pnl = max(profit - draw(st.integers(0, max(profit // 2, 0))), 1)
    now = min(pnl * BPS // pool, 10_000)  # the factor, capped: the trigger is at most 100 %
    trigger = draw(st.integers(max(now - 3_000, 1), max(now - 1, 1)))  # mostly just under it
    state = SideState(
        pnl=pnl,
        pool=pool,
        trigger_bps=trigger,
        target_bps=draw(st.integers(max(trigger - 3_000, 0), trigger - 1)),
        traders_cap_bps=draw(st.sampled_from([300, 1_000, 9_000, 10_000])),
        position_fee_bps=draw(st.integers(0, 100)),
        token_scale=scale,
        insurance_cut_bps=draw(st.integers(0, 5_000)),
    )
    return state, candidates


_cases = st.one_of(sides(), crowded_sides())


@settings(max_examples=400, deadline=None)
@given(_cases)
def test_plan__property__never_below_the_target_and_each_step_the_clamp(case):
    state, candidates = case
    walk = plan(state, candidates)
    assert walk.stop != "overshoot"  # the clamp is conservative in the model
    s, p = state.pnl, state.pool
    for step in walk.steps:
        assert (step.pnl_before, step.pool_before) == (s, p)
        assert triggered(s, p, state.trigger_bps)
        now = replace(state, pnl=s, pool=p)
        assert step.size == min(step.candidate.size, clamp(now, step.candidate)) > 0
        assert (step.pnl_after, step.pool_after) == after_close(now, step.candidate, step.size)
        assert at_or_above_target(step.pnl_after, step.pool_after, state.target_bps)
        s, p = step.pnl_after, step.pool_after
    assert (walk.pnl_after, walk.pool_after) == (s, p)


@settings(max_examples=400, deadline=None)
@given(_cases)
def test_plan__property__walks_a_prefix_of_the_ranking_in_order(case):
    state, candidates = case
    walk = plan(state, candidates)
    ranked = rank(candidates, state.token_scale)
    assert all(c.pnl > 0 for c in ranked)
    assert sorted(c.key for c in ranked) == sorted(c.key for c in candidates if c.pnl > 0)
    order = [(-score_of(c, state.token_scale), c.key) for c in ranked]
    assert order == sorted(order)
    assert [step.candidate for step in walk.steps] == ranked[: len(walk.steps)]
    scores = [step.score for step in walk.steps]
    assert scores == sorted(scores, reverse=True)
    # why it stopped, checked against the state it stopped in
    now = replace(state, pnl=walk.pnl_after, pool=walk.pool_after)
    rest = ranked[len(walk.steps) :]
    if walk.stop == "exhausted":
        assert not rest and triggered(walk.pnl_after, walk.pool_after, state.trigger_bps)
    elif walk.stop == "below trigger":
        assert not triggered(walk.pnl_after, walk.pool_after, state.trigger_bps)
    elif walk.stop == "clamp 0":
        assert rest and clamp(now, rest[0]) == 0
    elif walk.stop == "pool exhausted":  # funding received beyond the pool: off the chain's range
        size = min(rest[0].size, clamp(now, rest[0]))
        assert after_close(now, rest[0], size)[1] < 0
    else:
        assert walk.stop == "not triggered" and walk.steps == ()


@settings(max_examples=200, deadline=None)
@given(_cases)
def test_plan__property__empty_when_not_triggered(case):
    state, candidates = case
    walk = plan(state, candidates)
    if not triggered(state.pnl, state.pool, state.trigger_bps):
        assert walk.steps == () and walk.stop == "not triggered"
    below = replace(state, pool=state.pnl * BPS // max(state.trigger_bps, 1))
    if not triggered(below.pnl, below.pool, below.trigger_bps):
        assert plan(below, candidates).steps == ()
