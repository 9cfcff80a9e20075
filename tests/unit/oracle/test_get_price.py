"""Reads: get_price (spread on/off, staleness), get_exit_price (keeper price while fresh,
else the reference feed with the fallback spread), is_stale.

Views run against the head block, so each read is preceded by `mine_at(t)`.
"""

import ape
import pytest

from perpool import params

WAD = params.WAD
BPS = params.BPS
ETH, BTC, UNKNOWN = 1, 2, 3
REF_MAX_AGE = 3_600
BASE = 3_000 * WAD


@pytest.fixture(scope="module")
def oracle(create_oracle):
    """The default bounds but a 10 % jump bound, so one push can cross the 2 % spread
    threshold and each spread rule is seen on one push. (At the default 2 % jump bound the
    spread needs two pushes in a window: test_get_price__default_bounds__second_push_past_
    the_threshold_turns_the_spread_on.)"""
    return create_oracle({**params.ORACLE_CONFIG, "max_jump_bps": 1_000})


def test_get_price__default_bounds__second_push_past_the_threshold_turns_the_spread_on(
    create_oracle, push, calc, mine_at, t0
):
    oracle = create_oracle()
    cfg = oracle.config()
    assert cfg.max_jump_bps == cfg.spread_threshold_bps == 200  # one push never crosses it
    push(oracle, ETH, BASE, t0)
    first = BASE + calc.max_delta(BASE, cfg.max_jump_bps)  # the whole jump bound: +2 %
    push(oracle, ETH, first, t0 + 1)
    mine_at(t0 + 2)
    assert _reads(oracle, ETH) == (first, first)  # exactly at the threshold: no spread
    trigger = _spread_trigger(calc, BASE, cfg.spread_threshold_bps) + 10**18
    push(oracle, ETH, trigger, t0 + 3)  # +2 % and $1 from the window's anchor
    assert oracle.price_data(ETH).spread_until == t0 + 3 + cfg.spread_duration
    assert _reads(oracle, ETH) == (calc.spread_max(trigger, cfg.spread_bps), calc.spread_min(trigger, cfg.spread_bps))


def _spread_trigger(calc, base, threshold_bps):
    """The smallest price above `base` that moves it more than the spread threshold."""
    price = base + calc.max_delta(base, threshold_bps) + 1
    assert (price - base) * BPS > threshold_bps * base
    return price


def _reads(oracle, market):
    return oracle.get_price(market, True), oracle.get_price(market, False)


# ---------------------------------------------------------------- get_price


def test_get_price__fresh_price_without_spread__returns_stored_price_both_ways(
    oracle, push, mine_at, t0
):
    price = BASE + 7
    push(oracle, ETH, price, t0)
    mine_at(t0 + 1)

    assert _reads(oracle, ETH) == (price, price)
    assert oracle.get_exit_price(ETH, True) == oracle.get_exit_price(ETH, False) == price


def test_get_price__move_beyond_spread_threshold__applies_rounded_spread(
    oracle, push, calc, t0
):
    cfg = oracle.config()
    push(oracle, ETH, BASE, t0)
    price = _spread_trigger(calc, BASE, cfg.spread_threshold_bps)
    # the chosen price makes both spread products inexact, so the rounding shows
    assert price * (BPS + cfg.spread_bps) % BPS != 0
    assert price * (BPS - cfg.spread_bps) % BPS != 0

    tx = push(oracle, ETH, price, t0 + 1)

    until = t0 + 1 + cfg.spread_duration
    assert oracle.price_data(ETH).spread_until == until
    [event] = tx.decode_logs(oracle.PriceUpdate)
    assert (event.market, event.price, event.observed_at, event.spread_until) == (
        ETH,
        price,
        t0 + 1,
        until,
    )
    high, low = calc.spread_max(price, cfg.spread_bps), calc.spread_min(price, cfg.spread_bps)
    assert low < price < high
    assert _reads(oracle, ETH) == (high, low)
    assert (oracle.get_exit_price(ETH, True), oracle.get_exit_price(ETH, False)) == (high, low)


def test_get_price__move_exactly_at_spread_threshold__no_spread(oracle, push, calc, mine_at, t0):
    cfg = oracle.config()
    push(oracle, ETH, BASE, t0)
    price = BASE + calc.max_delta(BASE, cfg.spread_threshold_bps)

    tx = push(oracle, ETH, price, t0 + 1)

    assert oracle.price_data(ETH).spread_until == 0
    assert tx.decode_logs(oracle.PriceUpdate)[0].spread_until == 0
    assert _reads(oracle, ETH) == (price, price)


def test_get_price__downward_move_beyond_threshold__applies_spread(oracle, push, calc, t0):
    cfg = oracle.config()
    push(oracle, ETH, BASE, t0)
    price = BASE - calc.max_delta(BASE, cfg.spread_threshold_bps) - 1

    push(oracle, ETH, price, t0 + 1)

    assert oracle.price_data(ETH).spread_until == t0 + 1 + cfg.spread_duration
    assert _reads(oracle, ETH) == (
        calc.spread_max(price, cfg.spread_bps),
        calc.spread_min(price, cfg.spread_bps),
    )


def test_get_price__small_steps_adding_up_beyond_threshold_in_window__applies_spread(
    oracle, push, calc, t0
):
    cfg = oracle.config()
    step = calc.max_delta(BASE, cfg.spread_threshold_bps) // 2 + 1
    push(oracle, ETH, BASE, t0)
    push(oracle, ETH, BASE + step, t0 + 1)
    assert oracle.price_data(ETH).spread_until == 0  # one step alone stays below

    push(oracle, ETH, BASE + 2 * step, t0 + 2)  # measured from the window anchor

    assert oracle.price_data(ETH).spread_until == t0 + 2 + cfg.spread_duration
    assert oracle.get_price(ETH, True) == calc.spread_max(BASE + 2 * step, cfg.spread_bps)


def test_get_price__spread_until_boundary__on_one_second_before_off_at(
    oracle, push, calc, mine_at, t0
):
    cfg = oracle.config()
    assert cfg.spread_duration <= cfg.max_price_age  # the price stays fresh throughout
    push(oracle, ETH, BASE, t0)
    price = _spread_trigger(calc, BASE, cfg.spread_threshold_bps)
    push(oracle, ETH, price, t0 + 1)
    until = oracle.price_data(ETH).spread_until
    assert until == t0 + 1 + cfg.spread_duration

    mine_at(until - 1)
    assert _reads(oracle, ETH) == (
        calc.spread_max(price, cfg.spread_bps),
        calc.spread_min(price, cfg.spread_bps),
    )

    mine_at(until)
    assert _reads(oracle, ETH) == (price, price)


def test_get_price__spread_bps_zero__no_spread_after_large_move(
    oracle, push, calc, deployer, t0
):
    oracle.set_config({**params.ORACLE_CONFIG, "max_jump_bps": 1_000, "spread_bps": 0}, sender=deployer)
    cfg = oracle.config()
    push(oracle, ETH, BASE, t0)
    price = _spread_trigger(calc, BASE, cfg.spread_threshold_bps)

    push(oracle, ETH, price, t0 + 1)

    assert oracle.price_data(ETH).spread_until == t0 + 1 + cfg.spread_duration
    assert _reads(oracle, ETH) == (price, price)


def test_set_prices__second_large_move__extends_spread(oracle, push, calc, t0):
    cfg = oracle.config()
    push(oracle, ETH, BASE, t0)
    first = _spread_trigger(calc, BASE, cfg.spread_threshold_bps)
    push(oracle, ETH, first, t0 + 1)

    tx = push(oracle, ETH, first + 1, t0 + 100)  # still beyond the threshold from the anchor

    until = t0 + 100 + cfg.spread_duration
    assert oracle.price_data(ETH).spread_until == until
    assert tx.decode_logs(oracle.PriceUpdate)[0].spread_until == until


def test_set_prices__small_move_during_spread__keeps_spread_until(oracle, push, calc, t0):
    cfg = oracle.config()
    push(oracle, ETH, BASE, t0)
    push(oracle, ETH, _spread_trigger(calc, BASE, cfg.spread_threshold_bps), t0 + 1)
    until = t0 + 1 + cfg.spread_duration

    tx = push(oracle, ETH, BASE, t0 + 2)  # back at the anchor: no new trigger

    assert oracle.price_data(ETH).spread_until == until
    assert tx.decode_logs(oracle.PriceUpdate)[0].spread_until == until
    assert oracle.get_price(ETH, True) == calc.spread_max(BASE, cfg.spread_bps)


def test_set_prices__shorter_spread_duration_later__never_shortens_spread(
    oracle, push, calc, chain, deployer, t0
):
    cfg = oracle.config()
    push(oracle, ETH, BASE, t0)
    push(oracle, ETH, _spread_trigger(calc, BASE, cfg.spread_threshold_bps), t0 + 1)
    until = t0 + 1 + cfg.spread_duration
    chain.pending_timestamp = t0 + 1
    oracle.set_config({**params.ORACLE_CONFIG, "spread_duration": 10}, sender=deployer)

    push(oracle, ETH, oracle.price_data(ETH).price + 1, t0 + 2)  # trigger: t0 + 12 < until

    assert oracle.price_data(ETH).spread_until == until


def test_get_price__spread_on_one_market__leaves_other_market_unspread(
    oracle, push, calc, t0
):
    cfg = oracle.config()
    push(oracle, [ETH, BTC], [BASE, 60_000 * WAD], t0)

    eth = _spread_trigger(calc, BASE, cfg.spread_threshold_bps)
    push(oracle, [ETH, BTC], [eth, 60_000 * WAD + 1], t0 + 1)

    assert oracle.price_data(ETH).spread_until == t0 + 1 + cfg.spread_duration
    assert oracle.price_data(BTC).spread_until == 0
    assert _reads(oracle, BTC) == (60_000 * WAD + 1, 60_000 * WAD + 1)


def test_get_price__exactly_max_price_age_old__still_fresh(oracle, push, mine_at, t0):
    max_age = oracle.config().max_price_age
    push(oracle, ETH, BASE, t0)

    mine_at(t0 + max_age)

    assert not oracle.is_stale(ETH)
    assert _reads(oracle, ETH) == (BASE, BASE)


def test_get_price__one_second_past_max_price_age__reverts_stale(
    oracle, push, mine_at, snapshot, t0
):
    max_age = oracle.config().max_price_age
    push(oracle, ETH, BASE, t0)
    mine_at(t0 + max_age + 1)
    before = snapshot(oracle)

    assert oracle.is_stale(ETH)
    for maximize in (True, False):
        with ape.reverts("oracle: stale price"):
            oracle.get_price(ETH, maximize)

    assert snapshot(oracle) == before


def test_get_price__observed_ahead_within_skew__stays_fresh_until_observed_plus_max_age(
    oracle, push, mine_at, t0
):
    cfg = oracle.config()
    observed = t0 + cfg.max_future_skew
    push(oracle, ETH, BASE, observed, at=t0)

    mine_at(observed + cfg.max_price_age)
    assert oracle.get_price(ETH, True) == BASE

    mine_at(observed + cfg.max_price_age + 1)
    with ape.reverts("oracle: stale price"):
        oracle.get_price(ETH, True)


def test_get_price__registered_market_never_pushed__reverts_no_price(oracle, snapshot):
    before = snapshot(oracle)

    assert oracle.is_stale(ETH)
    for maximize in (True, False):
        with ape.reverts("oracle: no price"):
            oracle.get_price(ETH, maximize)

    assert snapshot(oracle) == before


@pytest.mark.parametrize("market", [0, UNKNOWN])
def test_get_price__unknown_market__reverts(oracle, snapshot, market):
    before = snapshot(oracle)

    assert not oracle.is_market(market)
    with ape.reverts("oracle: unknown market"):
        oracle.get_price(market, True)

    assert snapshot(oracle) == before


# ---------------------------------------------------------------- get_exit_price


@pytest.mark.parametrize("decimals", [0, 8, 18])
def test_get_exit_price__keeper_stale_feed_fresh__reference_with_fallback_spread(
    oracle, push, calc, create_feed, set_answer, mine_at, deployer, t0, decimals
):
    feed = create_feed(decimals)
    oracle.set_reference_feed(ETH, feed, REF_MAX_AGE, sender=deployer)
    cfg = oracle.config()
    answer = 2_990 * 10**decimals + (7 if decimals else 0)
    set_answer(feed, answer, t0)
    push(oracle, ETH, BASE, t0)
    mine_at(t0 + cfg.max_price_age + 1)
    with ape.reverts("oracle: stale price"):
        oracle.get_price(ETH, True)

    reference = calc.scale(answer, decimals)
    high = oracle.get_exit_price(ETH, True)
    low = oracle.get_exit_price(ETH, False)

    assert high == calc.spread_max(reference, cfg.fallback_spread_bps)
    assert low == calc.spread_min(reference, cfg.fallback_spread_bps)
    assert low < reference < high


def test_get_exit_price__keeper_fresh__ignores_feed(
    feed_oracle, ref_feed, push, set_answer, mine_at, t0
):
    set_answer(ref_feed, 2_950 * 10**8, t0)
    push(feed_oracle, ETH, BASE, t0)
    mine_at(t0 + feed_oracle.config().max_price_age)

    assert feed_oracle.get_exit_price(ETH, True) == BASE
    assert feed_oracle.get_exit_price(ETH, False) == BASE


def test_get_exit_price__never_pushed_feed_fresh__reference_with_fallback_spread(
    feed_oracle, ref_feed, set_answer, calc, mine_at, t0
):
    cfg = feed_oracle.config()
    answer = 3_000 * 10**8 + 12_345_678
    set_answer(ref_feed, answer, t0)
    mine_at(t0 + 1)
    reference = calc.scale(answer, 8)

    assert feed_oracle.get_exit_price(ETH, True) == calc.spread_max(
        reference, cfg.fallback_spread_bps
    )
    assert feed_oracle.get_exit_price(ETH, False) == calc.spread_min(
        reference, cfg.fallback_spread_bps
    )


def test_get_exit_price__fallback_spread_zero__returns_exact_reference(
    feed_oracle, ref_feed, set_answer, calc, deployer, mine_at, t0
):
    feed_oracle.set_config({**params.ORACLE_CONFIG, "fallback_spread_bps": 0}, sender=deployer)
    answer = 3_000 * 10**8 + 1
    set_answer(ref_feed, answer, t0)
    mine_at(t0 + 1)

    assert feed_oracle.get_exit_price(ETH, True) == calc.scale(answer, 8)
    assert feed_oracle.get_exit_price(ETH, False) == calc.scale(answer, 8)


def test_get_exit_price__feed_exactly_max_age_old__still_used(
    feed_oracle, ref_feed, set_answer, calc, mine_at, t0
):
    answer = 3_000 * 10**8
    set_answer(ref_feed, answer, t0)

    mine_at(t0 + REF_MAX_AGE)

    assert feed_oracle.get_exit_price(ETH, False) == calc.spread_min(
        calc.scale(answer, 8), feed_oracle.config().fallback_spread_bps
    )


def test_get_exit_price__keeper_stale_and_feed_stale__reverts_no_fresh_price(
    feed_oracle, ref_feed, push, set_answer, mine_at, snapshot, t0
):
    set_answer(ref_feed, 3_000 * 10**8, t0)
    push(feed_oracle, ETH, BASE, t0)
    mine_at(t0 + REF_MAX_AGE + 1)  # past both max ages
    before = snapshot(feed_oracle)

    for maximize in (True, False):
        with ape.reverts("oracle: no fresh price"):
            feed_oracle.get_exit_price(ETH, maximize)

    assert snapshot(feed_oracle) == before


def test_get_exit_price__keeper_stale_no_feed__reverts_no_fresh_price(
    oracle, push, mine_at, snapshot, t0
):
    push(oracle, ETH, BASE, t0)
    mine_at(t0 + oracle.config().max_price_age + 1)
    before = snapshot(oracle)

    with ape.reverts("oracle: no fresh price"):
        oracle.get_exit_price(ETH, True)

    assert snapshot(oracle) == before


def test_get_exit_price__never_pushed_no_feed__reverts_no_fresh_price(oracle, snapshot):
    before = snapshot(oracle)

    with ape.reverts("oracle: no fresh price"):
        oracle.get_exit_price(BTC, False)

    assert snapshot(oracle) == before


@pytest.mark.parametrize("answer", [0, -1])
def test_get_exit_price__feed_answer_not_positive__reverts_no_fresh_price(
    feed_oracle, ref_feed, set_answer, mine_at, snapshot, t0, answer
):
    set_answer(ref_feed, answer, t0)
    mine_at(t0 + 1)
    before = snapshot(feed_oracle)

    with ape.reverts("oracle: no fresh price"):
        feed_oracle.get_exit_price(ETH, True)

    assert snapshot(feed_oracle) == before


@pytest.mark.parametrize("market", [0, UNKNOWN])
def test_get_exit_price__unknown_market__reverts(oracle, snapshot, market):
    before = snapshot(oracle)

    with ape.reverts("oracle: unknown market"):
        oracle.get_exit_price(market, False)

    assert snapshot(oracle) == before
