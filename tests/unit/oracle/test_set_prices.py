"""Oracle.set_prices: who may push, batch shape, timestamps, price range, first-push state.

Bounds between pushes (jump, window, reference) are in test_bounds.py.
"""

import ape

from perpool import params

WAD = params.WAD
ETH, BTC, UNKNOWN = 1, 2, 3  # create_oracle registers ETH and BTC
MAX_PRICE = 2**96 - 1  # documented storage limit of a price


# ---------------------------------------------------------------- happy paths


def test_set_prices__first_push__stores_price_anchors_window_and_logs(oracle, push, chain, t0):
    price = 3_000 * WAD + 7

    tx = push(oracle, ETH, price, t0)

    assert chain.blocks.head.timestamp == t0
    data = oracle.price_data(ETH)
    assert data.price == price
    assert data.observed_at == t0
    assert data.window_ref_price == price  # the first price anchors its own window
    assert data.window_start == t0
    assert data.spread_until == 0
    assert oracle.price_timestamp(ETH) == t0
    assert not oracle.is_stale(ETH)
    assert oracle.price_data(BTC).price == 0  # other markets untouched
    events = tx.decode_logs(oracle.PriceUpdate)
    assert len(events) == 1
    assert events[0].market == ETH
    assert events[0].price == price
    assert events[0].observed_at == t0
    assert events[0].spread_until == 0


def test_set_prices__batch_of_two_markets__stores_both_and_logs_each(oracle, push, t0):
    eth, btc = 3_000 * WAD, 60_000 * WAD

    tx = push(oracle, [ETH, BTC], [eth, btc], t0)

    assert oracle.price_data(ETH).price == eth
    assert oracle.price_data(BTC).price == btc
    assert oracle.price_timestamp(ETH) == oracle.price_timestamp(BTC) == t0
    events = tx.decode_logs(oracle.PriceUpdate)
    assert [(e.market, e.price, e.observed_at) for e in events] == [(ETH, eth, t0), (BTC, btc, t0)]


def test_set_prices__second_push_within_window__keeps_window_anchor(oracle, push, t0):
    first = 3_000 * WAD
    second = first + first // 100  # +1 %: below jump, window and spread thresholds
    push(oracle, ETH, first, t0)

    tx = push(oracle, ETH, second, t0 + 10)

    data = oracle.price_data(ETH)
    assert (data.price, data.observed_at) == (second, t0 + 10)
    assert (data.window_ref_price, data.window_start) == (first, t0)
    assert data.spread_until == 0
    [event] = tx.decode_logs(oracle.PriceUpdate)
    assert (event.market, event.price, event.observed_at, event.spread_until) == (
        ETH,
        second,
        t0 + 10,
        0,
    )


def test_set_prices__observed_exactly_max_price_age_ago__accepted(oracle, push, chain, t0):
    max_age = oracle.config().max_price_age
    observed = t0 - max_age

    push(oracle, ETH, 3_000 * WAD, observed, at=t0)

    assert chain.blocks.head.timestamp == t0
    assert oracle.price_data(ETH).observed_at == observed
    assert not oracle.is_stale(ETH)  # observed + max_age == block.timestamp: still fresh


def test_set_prices__observed_exactly_max_future_skew_ahead__accepted(oracle, push, chain, t0):
    skew = oracle.config().max_future_skew
    assert skew > 0
    observed = t0 + skew

    push(oracle, ETH, 3_000 * WAD, observed, at=t0)

    assert chain.blocks.head.timestamp == t0
    assert oracle.price_data(ETH).observed_at == observed


def test_set_prices__largest_storable_price_as_first_push__accepted(oracle, push, t0):
    push(oracle, ETH, MAX_PRICE, t0)

    data = oracle.price_data(ETH)
    assert data.price == data.window_ref_price == MAX_PRICE
    assert data.observed_at == data.window_start == t0  # packing did not spill over


def test_set_prices__smallest_price_of_one_wei__accepted(oracle, push, t0):
    push(oracle, ETH, 1, t0)

    assert oracle.price_data(ETH).price == 1


def test_set_prices__newly_added_updater__may_push(oracle, push, deployer, attacker, t0):
    oracle.set_updater(attacker, True, sender=deployer)

    push(oracle, ETH, 3_000 * WAD, t0, sender=attacker)

    assert oracle.price_data(ETH).price == 3_000 * WAD


# ---------------------------------------------------------------- refusals


def test_set_prices__not_updater__reverts(oracle, push, snapshot, attacker, t0):
    before = snapshot(oracle)

    with ape.reverts("oracle: not updater"):
        push(oracle, ETH, 3_000 * WAD, t0, sender=attacker)

    assert snapshot(oracle) == before


def test_set_prices__removed_updater__reverts(
    oracle, push, snapshot, chain, keeper, deployer, t0
):
    push(oracle, ETH, 3_000 * WAD, t0)
    chain.pending_timestamp = t0
    oracle.set_updater(keeper, False, sender=deployer)
    before = snapshot(oracle)

    with ape.reverts("oracle: not updater"):
        push(oracle, ETH, 3_001 * WAD, t0 + 1)

    assert snapshot(oracle) == before


def test_set_prices__admin_without_updater_role__reverts(oracle, push, snapshot, deployer, t0):
    before = snapshot(oracle)

    with ape.reverts("oracle: not updater"):
        push(oracle, ETH, 3_000 * WAD, t0, sender=deployer)

    assert snapshot(oracle) == before


def test_set_prices__more_markets_than_prices__reverts_length_mismatch(oracle, push, snapshot, t0):
    before = snapshot(oracle)

    with ape.reverts("oracle: length mismatch"):
        push(oracle, [ETH, BTC], [3_000 * WAD], t0)

    assert snapshot(oracle) == before


def test_set_prices__more_prices_than_markets__reverts_length_mismatch(oracle, push, snapshot, t0):
    before = snapshot(oracle)

    with ape.reverts("oracle: length mismatch"):
        push(oracle, [ETH], [3_000 * WAD, 60_000 * WAD], t0)

    assert snapshot(oracle) == before


def test_set_prices__empty_batch__reverts(oracle, push, snapshot, t0):
    before = snapshot(oracle)

    with ape.reverts("oracle: empty batch"):
        push(oracle, [], [], t0)

    assert snapshot(oracle) == before


def test_set_prices__observed_one_second_beyond_future_skew__reverts(
    oracle, push, snapshot, chain, t0
):
    skew = oracle.config().max_future_skew
    before = snapshot(oracle)

    with ape.reverts("oracle: future timestamp"):
        push(oracle, ETH, 3_000 * WAD, t0 + skew + 1, at=t0)

    assert chain.blocks.head.timestamp == t0  # the refused tx was mined at t0
    assert snapshot(oracle) == before


def test_set_prices__observed_one_second_beyond_max_price_age__reverts_stale(
    oracle, push, snapshot, chain, t0
):
    max_age = oracle.config().max_price_age
    before = snapshot(oracle)

    with ape.reverts("oracle: stale timestamp"):
        push(oracle, ETH, 3_000 * WAD, t0 - max_age - 1, at=t0)

    assert chain.blocks.head.timestamp == t0
    assert snapshot(oracle) == before


def test_set_prices__unknown_market_above_count__reverts(oracle, push, snapshot, t0):
    before = snapshot(oracle)

    with ape.reverts("oracle: unknown market"):
        push(oracle, UNKNOWN, 3_000 * WAD, t0)

    assert snapshot(oracle) == before


def test_set_prices__market_zero__reverts_unknown_market(oracle, push, snapshot, t0):
    before = snapshot(oracle)

    with ape.reverts("oracle: unknown market"):
        push(oracle, 0, 3_000 * WAD, t0)

    assert snapshot(oracle) == before


def test_set_prices__zero_price__reverts(oracle, push, snapshot, t0):
    before = snapshot(oracle)

    with ape.reverts("oracle: zero price"):
        push(oracle, ETH, 0, t0)

    assert snapshot(oracle) == before


def test_set_prices__price_one_above_storable_max__reverts_too_large(oracle, push, snapshot, t0):
    before = snapshot(oracle)

    with ape.reverts("oracle: price too large"):
        push(oracle, ETH, MAX_PRICE + 1, t0)

    assert snapshot(oracle) == before


def test_set_prices__same_timestamp_as_stored__reverts_not_newer(oracle, push, snapshot, t0):
    push(oracle, ETH, 3_000 * WAD, t0)
    before = snapshot(oracle)

    with ape.reverts("oracle: timestamp not newer"):
        push(oracle, ETH, 3_001 * WAD, t0, at=t0 + 1)

    assert snapshot(oracle) == before


def test_set_prices__older_timestamp_than_stored__reverts_not_newer(oracle, push, snapshot, t0):
    push(oracle, ETH, 3_000 * WAD, t0 + 5, at=t0)  # observed slightly ahead (within skew)
    before = snapshot(oracle)

    with ape.reverts("oracle: timestamp not newer"):
        push(oracle, ETH, 3_001 * WAD, t0 + 4, at=t0 + 1)

    assert snapshot(oracle) == before


def test_set_prices__same_market_twice_in_one_batch__reverts_not_newer(oracle, push, snapshot, t0):
    before = snapshot(oracle)

    with ape.reverts("oracle: timestamp not newer"):
        push(oracle, [ETH, ETH], [3_000 * WAD, 3_001 * WAD], t0)

    assert snapshot(oracle) == before


def test_set_prices__one_bad_item_in_batch__reverts_whole_batch(oracle, push, snapshot, t0):
    push(oracle, [ETH, BTC], [3_000 * WAD, 60_000 * WAD], t0)
    before = snapshot(oracle)

    with ape.reverts("oracle: zero price"):
        push(oracle, [ETH, BTC], [3_010 * WAD, 0], t0 + 1)  # the ETH item alone is valid

    assert snapshot(oracle) == before
