"""The order keeper's pure decisions (keepers/decide/orders.py), without a chain: the trigger
rule restated from the OrderBook, which orders a push decides, the triage of the chain's
answers, batches of at most 64 with the push first, bisection of a failing batch (against
brute force), and the parking backoff."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from keepers.decide.orders import (
    CANCELLED,
    EXECUTED,
    EXPIRED,
    LIMIT_INCREASE,
    LP_DEPOSIT,
    LP_REDEEM,
    MARKET_DECREASE,
    MARKET_INCREASE,
    MAX_BATCH,
    NOT_FOUND,
    PENDING,
    PRICE_NOT_ACCEPTABLE,
    PRICE_NOT_NEWER,
    PRICE_STALE,
    STOP_LOSS,
    TAKE_PROFIT,
    TOO_EARLY,
    TRIGGER_NOT_MET,
    Batch,
    Order,
    Parked,
    Status,
    available,
    backoff_s,
    buys,
    decided_by_push,
    is_market_order,
    isolate,
    markets_of,
    park,
    plan_batches,
    price_acceptable,
    select_for_push,
    trigger_holds,
    triage,
)

WAD = 10**18
ETH, BTC = 1, 2
ANY_UP, ANY_DOWN = 2**96 - 1, 0  # acceptable prices that accept every fill


def order(order_id: int, kind: int = MARKET_INCREASE, is_long: bool = True, trigger: int = 0,
          acceptable: int | None = None, floor: int = 1_000, market: int = ETH) -> Order:
    if acceptable is None:
        acceptable = ANY_UP if buys(kind, is_long) else ANY_DOWN
    return Order(order_id, market, kind, is_long, acceptable, trigger, floor)


# ---------------------------------------------------------------- the trigger rule


@pytest.mark.parametrize(
    "kind, is_long, waits_for",
    [
        (LIMIT_INCREASE, True, "fall"),  # buy the dip
        (LIMIT_INCREASE, False, "rise"),  # sell the rally
        (TAKE_PROFIT, True, "rise"),
        (TAKE_PROFIT, False, "fall"),
        (STOP_LOSS, True, "fall"),
        (STOP_LOSS, False, "rise"),
    ],
)
def test_trigger_holds__each_kind_and_side__inclusive_at_the_trigger(kind, is_long, waits_for):
    trigger = 3_000 * WAD
    assert trigger_holds(kind, is_long, trigger, trigger)  # at the trigger: holds
    below, above = trigger - 1, trigger + 1
    assert trigger_holds(kind, is_long, below, trigger) == (waits_for == "fall")
    assert trigger_holds(kind, is_long, above, trigger) == (waits_for == "rise")


def test_price_acceptable__buys_up_to_sells_down_to():
    assert buys(MARKET_INCREASE, True) and buys(MARKET_DECREASE, False)
    assert not buys(MARKET_INCREASE, False) and not buys(TAKE_PROFIT, True)
    assert price_acceptable(MARKET_INCREASE, True, 100, 100) and not price_acceptable(MARKET_INCREASE, True, 101, 100)
    assert price_acceptable(MARKET_DECREASE, True, 100, 100) and not price_acceptable(MARKET_DECREASE, True, 99, 100)


# ---------------------------------------------------------------- what a push decides


def test_decided_by_push__market_order__any_price_observed_after_the_floor():
    o = order(1, floor=1_000)
    assert not decided_by_push(o, 3_000 * WAD, 1_000)  # the floor itself is not newer
    assert decided_by_push(o, 3_000 * WAD, 1_001)
    # an unacceptable price still decides it: the batch cancels the order (and is paid)
    assert decided_by_push(order(2, acceptable=2_000 * WAD), 3_000 * WAD, 1_001)


def test_decided_by_push__trigger_order__only_when_trigger_and_acceptable_price_hold():
    take_profit = order(1, TAKE_PROFIT, True, trigger=3_100 * WAD)
    assert not decided_by_push(take_profit, 3_099 * WAD, 2_000)
    assert decided_by_push(take_profit, 3_100 * WAD, 2_000)
    assert not decided_by_push(take_profit, 3_200 * WAD, 1_000)  # crossed, but not newer
    picky = order(2, LIMIT_INCREASE, True, trigger=2_900 * WAD, acceptable=2_850 * WAD)
    assert not decided_by_push(picky, 2_880 * WAD, 2_000)  # trigger met, price not acceptable
    assert decided_by_push(picky, 2_850 * WAD, 2_000)


def test_select_for_push__only_markets_pushed_and_orders_decided__oldest_first():
    orders = {
        5: order(5, floor=100),
        3: order(3, TAKE_PROFIT, True, trigger=3_100 * WAD),
        4: order(4, STOP_LOSS, True, trigger=2_900 * WAD),
        1: order(1, market=BTC),
        9: order(9, floor=2_000),  # placed after the observation
    }
    chosen = select_for_push(orders, [5, 3, 4, 1, 9, 77], {ETH: 3_150 * WAD}, 1_500)
    assert chosen == [3, 5]  # 4 not triggered, 1 in another market, 9 too new, 77 unknown


def test_lp_orders__need_a_push_of_every_market_newer_than_their_floor():
    """An LP order prices the whole pool (OrderBook._lp_prices_wait): a push decides it only
    when it carries every market, observed after the order's floor."""
    orders = {
        1: order(1, LP_DEPOSIT, False, acceptable=0, floor=1_000, market=0),
        2: order(2, LP_REDEEM, False, acceptable=0, floor=1_000, market=0),
        3: order(3, LP_DEPOSIT, False, acceptable=0, floor=2_000, market=0),
    }
    assert is_market_order(LP_DEPOSIT) and is_market_order(LP_REDEEM)
    assert markets_of(orders[1], [ETH, BTC]) == {ETH, BTC}
    assert markets_of(order(4, market=BTC), [ETH, BTC]) == {BTC}
    both = {ETH: 3_000 * WAD, BTC: 60_000 * WAD}
    assert select_for_push(orders, [1, 2, 3], both, 1_500, [ETH, BTC]) == [1, 2]  # 3 too new
    assert select_for_push(orders, [1, 2, 3], {ETH: 3_000 * WAD}, 1_500, [ETH, BTC]) == []
    assert select_for_push(orders, [1, 2, 3], both, 1_500) == []  # markets unknown: never guessed


# ---------------------------------------------------------------- triage


def test_triage__sorts_the_chains_answers():
    statuses = {
        7: Status(EXECUTED, 0),
        2: Status(CANCELLED, EXPIRED),
        3: Status(PENDING, PRICE_NOT_NEWER),
        4: Status(PENDING, TRIGGER_NOT_MET),
        5: Status(PENDING, TOO_EARLY),
        6: Status(PENDING, NOT_FOUND),
        8: Status(PENDING, PRICE_STALE),
        9: Status(PENDING, PRICE_NOT_ACCEPTABLE),
        1: Status(CANCELLED, PRICE_NOT_ACCEPTABLE),
    }
    found = triage(statuses)
    assert found.ready == (1, 2, 7)
    assert found.need_price == (3, 4, 8, 9)
    assert found.gone == (6,)
    assert found.waiting == {PRICE_NOT_NEWER: 1, TRIGGER_NOT_MET: 1, TOO_EARLY: 1, PRICE_STALE: 1,
                             PRICE_NOT_ACCEPTABLE: 1}


def test_available__leaves_out_in_flight_and_parked_until_their_time():
    in_flight = {1: 10.0, 2: 5.0}
    parked = {3: Parked(1, 10.0, "reverts"), 4: Parked(2, 5.0, "reverts")}
    assert available([5, 4, 3, 2, 1], in_flight, parked, now=7.0) == [2, 4, 5]
    assert available([5, 4, 3, 2, 1], in_flight, parked, now=10.0) == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------- batches


def test_plan_batches__no_push__ready_orders_in_chunks_of_64_oldest_first():
    batches = plan_batches([], list(range(150, 0, -1)))
    assert [len(b.ids) for b in batches] == [64, 64, 22]
    assert batches[0].ids == tuple(range(1, 65)) and not any(b.with_prices for b in batches)
    assert [i for b in batches for i in b.ids] == list(range(1, 151))


def test_plan_batches__push__first_batch_carries_it_with_ready_orders_in_the_room_left():
    batches = plan_batches([10, 11], [1, 2, 3, 11])  # 11 both: counted once
    assert batches == [Batch((1, 2, 3, 10, 11), True)]
    big = plan_batches(list(range(100, 170)), [1, 2])
    assert big[0].with_prices and big[0].ids == tuple(range(100, 164))
    assert big[1] == Batch((1, 2, 164, 165, 166, 167, 168, 169))  # after the push landed


def test_plan_batches__at_most_max_batches_and_the_size_bounds():
    assert len(plan_batches([], list(range(1, 1_000)), size=10, max_batches=3)) == 3
    assert all(len(b.ids) <= 10 for b in plan_batches([1, 2], list(range(3, 40)), size=10))
    assert plan_batches([], []) == []
    with pytest.raises(ValueError):
        plan_batches([], [1], size=MAX_BATCH + 1)
    with pytest.raises(ValueError):
        plan_batches([], [1], size=0)


# ---------------------------------------------------------------- isolating a failing batch


def _probe_without(bad: set[int], calls: list[tuple[int, ...]]):
    def probe(part):
        calls.append(tuple(part))
        return not (set(part) & bad)

    return probe


def test_isolate__one_poisoned_order_in_64__found_in_2_log2_n_calls_and_the_rest_kept():
    ids = list(range(1, 65))
    calls: list[tuple[int, ...]] = []
    result = isolate(ids, _probe_without({37}, calls))
    assert result.bad == (37,)
    assert sorted(result.merged) == [i for i in ids if i != 37] and list(result.merged) == sorted(result.merged)
    assert result.probes == len(calls) <= 2 * math.ceil(math.log2(64))
    assert tuple(ids) not in calls  # the whole batch is known to fail: not called again


def test_isolate__orders_that_fail_only_together__both_kept_in_separate_parts():
    def probe(part):  # 1 and 2 conflict; each alone is fine
        return not {1, 2} <= set(part)

    result = isolate([1, 2], probe)
    assert result.bad == () and result.good == ((1,), (2,))


def test_isolate__every_order_fails__all_parked_none_sent():
    result = isolate([4, 5, 6], lambda part: False)
    assert result.bad == (4, 5, 6) and result.good == ()
    assert isolate([], lambda part: True).good == ()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 500), min_size=1, max_size=MAX_BATCH, unique=True).flatmap(
        lambda ids: st.tuples(st.just(ids), st.sets(st.sampled_from(ids), min_size=1))
    )
)
def test_isolate__property__bad_is_exactly_the_poisoned_set_and_nothing_is_lost(case):
    ids, bad = case  # at least one poisoned: the caller isolates only a batch that fails
    result = isolate(ids, _probe_without(bad, []))
    assert set(result.bad) == bad
    assert sorted(result.merged + result.bad) == sorted(ids)
    assert all(not (set(part) & bad) for part in result.good)
    order = {i: n for n, i in enumerate(ids)}  # parts keep the batch's order
    assert [order[i] for i in result.merged] == sorted(order[i] for i in result.merged)


# ---------------------------------------------------------------- parking


def test_backoff__doubles_from_the_base_up_to_the_cap():
    assert [backoff_s(n, 30, 3_600) for n in range(0, 10)] == [0, 30, 60, 120, 240, 480, 960, 1_920, 3_600, 3_600]
    assert backoff_s(10_000, 30, 3_600) == 3_600  # no overflow


def test_park__counts_consecutive_failures_and_waits_longer_each_time():
    first = park(None, now=100.0, reason="vault: underflow", base_s=30, max_s=3_600)
    assert first == Parked(1, 130.0, "vault: underflow")
    second = park(first, now=131.0, reason="vault: underflow", base_s=30, max_s=3_600)
    assert second.failures == 2 and second.until == 191.0
