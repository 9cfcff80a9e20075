"""Bounds between pushes: the per-push jump, the anchored window, the reference feed.

Every bound is |p - base| * 10000 <= bound_bps * base, so the largest accepted move is
floor(base * bound_bps / 10000) (`calc.max_delta`); each bound is probed at that move and
one wei beyond, on both sides.
"""

import ape
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpool import params
from chain_isolation import isolated

WAD = params.WAD
ETH, BTC = 1, 2
REF_MAX_AGE = 3_600  # max_age of feed_oracle's reference feed (see conftest)
ODD = 3_000 * WAD + 7  # a price whose bounds are not exact multiples


@pytest.fixture(scope="module")
def oracle(create_oracle):
    """Prices stay fresh for a day here, so the window bounds apply across a whole window
    (a stale stored price lifts them: see test_outage.py)."""
    return create_oracle(config={**params.ORACLE_CONFIG, "max_price_age": 86_400})


def _sign(direction):
    return 1 if direction == "up" else -1


# ---------------------------------------------------------------- jump


@pytest.mark.parametrize("direction", ["up", "down"])
def test_set_prices__jump_exactly_at_bound__accepted(oracle, push, calc, t0, direction):
    push(oracle, ETH, ODD, t0)
    delta = calc.max_delta(ODD, oracle.config().max_jump_bps)
    price = ODD + _sign(direction) * delta

    push(oracle, ETH, price, t0 + 1)

    assert oracle.price_data(ETH).price == price


@pytest.mark.parametrize("direction", ["up", "down"])
def test_set_prices__jump_one_wei_beyond_bound__reverts(
    oracle, push, snapshot, calc, t0, direction
):
    push(oracle, ETH, ODD, t0)
    delta = calc.max_delta(ODD, oracle.config().max_jump_bps)
    before = snapshot(oracle)

    with ape.reverts("oracle: price jump"):
        push(oracle, ETH, ODD + _sign(direction) * (delta + 1), t0 + 1)

    assert snapshot(oracle) == before


def test_set_prices__jump_bound_measured_from_stored_price_not_anchor(oracle, push, calc, t0):
    jump = oracle.config().max_jump_bps
    push(oracle, ETH, ODD, t0)
    second = ODD + calc.max_delta(ODD, jump)
    push(oracle, ETH, second, t0 + 1)

    third = second + calc.max_delta(second, jump)  # beyond one jump from the anchor
    push(oracle, ETH, third, t0 + 2)

    data = oracle.price_data(ETH)
    assert (data.price, data.window_ref_price) == (third, ODD)


@settings(max_examples=8, deadline=None)
@given(
    old=st.integers(min_value=10**6, max_value=10**28),
    jump_bps=st.integers(min_value=1, max_value=5_000),
    up=st.booleans(),
)
def test_set_prices__jump_bound_any_price_and_setting__exact(
    oracle, push, chain, deployer, old, jump_bps, up
):
    with isolated(chain):
        config = {**params.ORACLE_CONFIG, "max_jump_bps": jump_bps, "max_window_move_bps": 9_000}
        oracle.set_config(config, sender=deployer)
        t = chain.blocks.head.timestamp + 10
        push(oracle, ETH, old, t)
        delta = old * jump_bps // params.BPS
        sign = 1 if up else -1

        with ape.reverts("oracle: price jump"):
            push(oracle, ETH, old + sign * (delta + 1), t + 1)
        assert oracle.price_data(ETH).price == old

        push(oracle, ETH, old + sign * delta, t + 2)
        assert oracle.price_data(ETH).price == old + sign * delta


# ---------------------------------------------------------------- window


@pytest.mark.parametrize("direction", ["up", "down"])
def test_set_prices__window_move_exactly_at_bound__accepted(
    oracle, walk, calc, push, t0, direction
):
    anchor = 1_000 * WAD + 3
    push(oracle, ETH, anchor, t0)
    target = anchor + _sign(direction) * calc.max_delta(anchor, oracle.config().max_window_move_bps)

    last = walk(oracle, ETH, target, t0)

    data = oracle.price_data(ETH)
    assert data.price == target
    assert (data.window_ref_price, data.window_start) == (anchor, t0)
    assert last < t0 + oracle.config().window  # all within one window


@pytest.mark.parametrize("direction", ["up", "down"])
def test_set_prices__window_move_one_wei_beyond_bound__reverts(
    oracle, walk, calc, push, snapshot, t0, direction
):
    anchor = 1_000 * WAD + 3
    push(oracle, ETH, anchor, t0)
    sign = _sign(direction)
    bound = anchor + sign * calc.max_delta(anchor, oracle.config().max_window_move_bps)
    last = walk(oracle, ETH, bound, t0)
    before = snapshot(oracle)

    with ape.reverts("oracle: window move"):
        push(oracle, ETH, bound + sign, last + 1)  # a one-wei step: far inside the jump bound

    assert snapshot(oracle) == before


def test_set_prices__window_move_one_second_before_window_ends__still_reverts(
    oracle, walk, calc, push, snapshot, t0
):
    cfg = oracle.config()
    anchor = 1_000 * WAD
    push(oracle, ETH, anchor, t0)
    bound = anchor + calc.max_delta(anchor, cfg.max_window_move_bps)
    walk(oracle, ETH, bound, t0)
    before = snapshot(oracle)

    with ape.reverts("oracle: window move"):
        push(oracle, ETH, bound + 1, t0 + cfg.window - 1)

    assert snapshot(oracle) == before


def test_set_prices__window_elapsed__reanchors_at_last_price(oracle, walk, calc, push, t0):
    cfg = oracle.config()
    anchor = 1_000 * WAD
    push(oracle, ETH, anchor, t0)
    last_price = anchor + calc.max_delta(anchor, cfg.max_window_move_bps)
    walk(oracle, ETH, last_price, t0)
    new_start = t0 + cfg.window  # exactly `window` seconds after the old start
    price = last_price + calc.max_delta(last_price, cfg.max_jump_bps)  # beyond the old window

    push(oracle, ETH, price, new_start)

    data = oracle.price_data(ETH)
    assert data.price == price
    assert data.window_ref_price == last_price
    assert data.window_start == new_start


def test_set_prices__reanchored_window__bounds_moves_from_new_anchor(
    oracle, walk, calc, push, snapshot, t0
):
    cfg = oracle.config()
    anchor = 1_000 * WAD
    push(oracle, ETH, anchor, t0)
    new_anchor = anchor + calc.max_delta(anchor, cfg.max_window_move_bps)
    walk(oracle, ETH, new_anchor, t0)
    start = t0 + cfg.window
    push(oracle, ETH, new_anchor + 1, start)  # opens the new window at `new_anchor`
    bound = new_anchor + calc.max_delta(new_anchor, cfg.max_window_move_bps)
    last = walk(oracle, ETH, bound, start)
    assert oracle.price_data(ETH).window_ref_price == new_anchor
    before = snapshot(oracle)

    with ape.reverts("oracle: window move"):
        push(oracle, ETH, bound + 1, last + 1)

    assert snapshot(oracle) == before


def test_set_prices__push_long_after_window__starts_window_at_its_observation(
    oracle, push, t0
):
    cfg = oracle.config()
    push(oracle, ETH, 1_000 * WAD, t0)
    push(oracle, ETH, 1_010 * WAD, t0 + 1)
    later = t0 + 2 * cfg.window + 123

    push(oracle, ETH, 1_020 * WAD, later)

    data = oracle.price_data(ETH)
    assert data.window_start == later
    assert data.window_ref_price == 1_010 * WAD


# ---------------------------------------------------------------- reference feed


@pytest.mark.parametrize("decimals", [0, 8, 18])
@pytest.mark.parametrize("direction", ["up", "down"])
def test_set_prices__reference_deviation_at_bound_accepted_one_wei_beyond_reverts(
    oracle, push, snapshot, calc, create_feed, set_answer, deployer, t0, decimals, direction
):
    feed = create_feed(decimals)
    oracle.set_reference_feed(ETH, feed, REF_MAX_AGE, sender=deployer)
    answer = 3_000 * 10**decimals + (7 if decimals else 0)
    set_answer(feed, answer, t0)
    reference = calc.scale(answer, decimals)
    sign = _sign(direction)
    bound = reference + sign * calc.max_delta(reference, oracle.config().max_deviation_bps)
    before = snapshot(oracle)

    with ape.reverts("oracle: reference deviation"):
        push(oracle, ETH, bound + sign, t0)
    assert snapshot(oracle) == before

    push(oracle, ETH, bound, t0)
    assert oracle.price_data(ETH).price == bound


def test_set_prices__reference_moved_away_from_stored_price__reverts_deviation(
    feed_oracle, ref_feed, push, set_answer, snapshot, calc, t0
):
    oracle = feed_oracle
    set_answer(ref_feed, 3_000 * 10**8, t0)
    push(oracle, ETH, 3_000 * WAD, t0)
    low = 2_850 * 10**8  # 3000 is beyond 5 % above 2850
    set_answer(ref_feed, low, t0 + 1)
    reference = calc.scale(low, 8)
    price = 3_000 * WAD + 1  # a one-wei step: inside jump and window bounds
    assert (price - reference) * calc.BPS > oracle.config().max_deviation_bps * reference
    before = snapshot(oracle)

    with ape.reverts("oracle: reference deviation"):
        push(oracle, ETH, price, t0 + 2)

    assert snapshot(oracle) == before


def test_set_prices__reference_updated_exactly_max_age_ago__accepted(
    feed_oracle, ref_feed, push, set_answer, t0
):
    set_answer(ref_feed, 3_000 * 10**8, t0 - REF_MAX_AGE, at=t0)

    push(feed_oracle, ETH, 3_000 * WAD, t0)

    assert feed_oracle.price_data(ETH).price == 3_000 * WAD


def test_set_prices__reference_older_than_max_age__reverts_stale(
    feed_oracle, ref_feed, push, set_answer, snapshot, t0
):
    set_answer(ref_feed, 3_000 * 10**8, t0 - REF_MAX_AGE - 1, at=t0)
    before = snapshot(feed_oracle)

    with ape.reverts("oracle: reference stale"):
        push(feed_oracle, ETH, 3_000 * WAD, t0)

    assert snapshot(feed_oracle) == before


@pytest.mark.parametrize("answer", [0, -1, -(3_000 * 10**8)])
def test_set_prices__reference_answer_not_positive__reverts_invalid(
    feed_oracle, ref_feed, push, set_answer, snapshot, t0, answer
):
    set_answer(ref_feed, answer, t0)
    before = snapshot(feed_oracle)

    with ape.reverts("oracle: reference invalid"):
        push(feed_oracle, ETH, 3_000 * WAD, t0)

    assert snapshot(feed_oracle) == before


def test_set_prices__reference_removed__no_longer_bounds_pushes(
    feed_oracle, ref_feed, push, set_answer, deployer, t0
):
    feed_oracle.set_reference_feed(ETH, ape.utils.ZERO_ADDRESS, 0, sender=deployer)
    set_answer(ref_feed, 1_000 * 10**8, t0)

    push(feed_oracle, ETH, 3_000 * WAD, t0)  # three times the old reference

    assert feed_oracle.price_data(ETH).price == 3_000 * WAD


def test_set_prices__market_without_reference__ignores_other_markets_feed(
    feed_oracle, ref_feed, push, set_answer, t0
):
    set_answer(ref_feed, 0, t0)  # ETH's feed is invalid; BTC has none

    push(feed_oracle, BTC, 60_000 * WAD, t0)

    assert feed_oracle.price_data(BTC).price == 60_000 * WAD
