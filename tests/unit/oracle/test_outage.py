"""After a keeper outage the stored price is stale and the market may have moved past any
per-push bound: the next push is bounded only by the reference feed (where set), starts a
new window at its own price and turns the spread on from the block it lands in."""

import ape

from perpool import params

WAD = params.WAD
ETH = 1
CFG = params.ORACLE_CONFIG


def _stale_gap():
    return CFG["max_price_age"] + 1


def test_set_prices__after_outage_beyond_jump_bound__accepted_with_spread(oracle, push, chain, t0):
    push(oracle, ETH, 3_000 * WAD, t0)
    later = t0 + _stale_gap()
    price = 3_000 * WAD * (10_000 - 2 * CFG["max_jump_bps"]) // 10_000  # twice the jump bound

    push(oracle, ETH, price, later)

    data = oracle.price_data(ETH)
    assert data.price == price
    assert data.window_ref_price == price and data.window_start == later
    assert data.spread_until == chain.blocks.head.timestamp + CFG["spread_duration"]
    spread = CFG["spread_bps"]
    assert oracle.get_price(ETH, True) == -(-price * (10_000 + spread) // 10_000)
    assert oracle.get_price(ETH, False) == price * (10_000 - spread) // 10_000


def test_set_prices__fresh_stored_price__jump_bound_still_applies(oracle, push, snapshot, t0):
    push(oracle, ETH, 3_000 * WAD, t0)
    before = snapshot(oracle)
    price = 3_000 * WAD * (10_000 - 2 * CFG["max_jump_bps"]) // 10_000

    with ape.reverts("oracle: price jump"):
        push(oracle, ETH, price, t0 + CFG["max_price_age"])  # exactly max age: still fresh

    assert snapshot(oracle) == before


def test_set_prices__after_outage__reference_feed_still_bounds_the_push(
    oracle, push, snapshot, create_feed, set_answer, deployer, t0
):
    feed = create_feed(8)
    oracle.set_reference_feed(ETH, feed, 86_400, sender=deployer)
    set_answer(feed, 3_000 * 10**8, t0)
    push(oracle, ETH, 3_000 * WAD, t0)
    later = t0 + _stale_gap()
    before = snapshot(oracle)
    far = 3_000 * WAD * (10_000 - CFG["max_deviation_bps"] - 1) // 10_000  # beyond the reference bound

    with ape.reverts("oracle: reference deviation"):
        push(oracle, ETH, far, later)

    assert snapshot(oracle) == before


def test_set_prices__spread_runs_from_the_block_not_the_observation(oracle, push, chain, t0):
    push(oracle, ETH, 3_000 * WAD, t0)
    observed = t0 + 10
    landed = observed + CFG["spread_duration"] - 1  # observation almost as old as the spread
    push(oracle, ETH, 3_100 * WAD, observed, at=landed)  # +3.3 %: beyond the spread threshold

    assert oracle.price_data(ETH).spread_until == landed + CFG["spread_duration"]
