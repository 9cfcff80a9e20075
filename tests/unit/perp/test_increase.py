"""Perp.increase_position: opening, growing and adding collateral, fill prices, refusals.

Every expected number comes from the reference model in helpers.py (the formulas of
Perp.vy with the same rounding). Time is pinned with `pin` so no borrowing fee accrues
unless a test moves the clock on purpose; when it does, the fee is derived from the
indices the transaction settled with.
"""

from __future__ import annotations

import ape
import pytest

from helpers import (
    assert_refused,
    BPS,
    MAX_UINT,
    WAD,
    Indices,
    Position,
    bps_of,
    buckets,
    config_of,
    elapse,
    entry_price,
    expect_update,
    fast_reverts,  # noqa: F401 (autouse fixture)
    indices_used,
    largest,
    open_position,
    pin,
    push_fresh,
    position_fee,
    predict_increase,
    push_fresh,
    refused,
    spread_price,
    state_of,
    to_tokens,
    tokens_for,
)
from perpool import params

# an odd price close to the seeded one (no spread: the move stays under the threshold)
ODD_PRICE = params.LOCAL_MARKETS["ETH"] + 12_345_678_901_234_567
SIDES = pytest.mark.parametrize("is_long", [True, False], ids=["long", "short"])


@pytest.fixture(scope="module")
def cfg(env):
    return config_of(env.configurator, env.eth)


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, funded_trader, cfg, deployer, project):
    """Set up the module- and session-scoped fixtures before any test, so Ape's isolation
    never has to rebase a snapshot."""



def predict_open(env, is_long, collateral, size, price, cfg, idx=Indices()):
    """A new position: nothing pending, so only the indices snapshot depends on the chain."""
    return predict_increase(Position(), is_long, collateral, size, price, idx, cfg, env.scale)


# ---------------------------------------------------------------- worked examples


@pytest.mark.parametrize("is_long", [True, False], ids=["long", "short"])
def test_increase__before_open__get_position_reads_all_zero(env, funded_trader, is_long):
    """get_position's NatSpec: "The stored position (all zero when none)"."""
    assert tuple(env.perp.get_position(funded_trader, env.eth, is_long)) == (0, 0, 0, 0, 0)


@SIDES
def test_increase__open_at_odd_price__records_position_fee_and_buckets_from_formulas(
    env_any, trader, is_long
):
    env, perp, vault = env_any, env_any.perp, env_any.vault
    env.fund(trader)
    push_fresh(env, env.eth, ODD_PRICE)
    assert env.oracle.get_price(env.eth, True) == env.oracle.get_price(env.eth, False) == ODD_PRICE
    cfg = config_of(env.configurator, env.eth)
    collateral = env.usd(1_234) + env.unit // 7  # an odd amount of token units
    size = 12_345 * WAD + 678_901_234_567_890_123
    idx = Indices.of_state(env.reader.market_state(env.eth))
    change = predict_open(env, is_long, collateral, size, ODD_PRICE, cfg, idx)
    # the formulas, spelled out once: fee rounds up twice, tokens down (long) / up (short)
    fee_wad = -(-size * cfg["position_fee_bps"] // BPS)
    assert change.position_fee == -(-fee_wad // env.scale)
    expected_tokens = size * WAD // ODD_PRICE if is_long else -(-size * WAD // ODD_PRICE)
    assert change.position.size_tokens == expected_tokens
    assert change.position.collateral == collateral - change.position_fee
    pool, collateral_bucket, escrow, insurance = buckets(vault)
    trader_tokens, vault_tokens = env.token.balanceOf(trader), env.token.balanceOf(vault)

    pin(env)
    tx = perp.increase_position(env.eth, is_long, collateral, size, ODD_PRICE, sender=trader)

    assert indices_used(env, env.eth) == Indices()  # nothing was open: nothing accrued
    assert Position.of(perp.get_position(trader, env.eth, is_long)) == change.position
    [log] = tx.decode_logs(perp.PositionUpdate)
    expect_update(log, change, trader, env.eth, is_long)
    assert log.key == perp.position_key(trader, env.eth, is_long)
    assert env.token.balanceOf(trader) == trader_tokens - collateral
    assert env.token.balanceOf(vault) == vault_tokens + collateral
    assert buckets(vault) == (
        pool + change.position_fee,
        collateral_bucket + collateral - change.position_fee,
        escrow,
        insurance,
    )
    assert (change.pool_delta, change.collateral_delta) == (
        change.position_fee,
        collateral - change.position_fee,
    )
    assert perp.open_interest(env.eth, is_long) == (size, expected_tokens)
    assert perp.open_interest(env.eth, not is_long) == (0, 0)
    reserved_usd = bps_of(size, cfg["reserve_factor_bps"], True)
    assert env.reader.total_reserved_usd() == reserved_usd
    assert vault.reserved_amount() == to_tokens(reserved_usd, env.scale, True)
    assert vault.is_solvent()


@SIDES
def test_increase__grow_after_an_hour__settles_borrowing_and_adds_tokens_at_new_price(
    env, funded_trader, cfg, is_long
):
    perp = env.perp
    pin(env)
    open_position(env, funded_trader, env.eth, is_long, env.usd(2_000), 20_000 * WAD)
    before = Position.of(perp.get_position(funded_trader, env.eth, is_long))
    stored = env.reader.market_state(env.eth)
    rate = env.reader.rates(env.eth).borrowing_rate_per_second
    assert rate > 0

    new_price = params.LOCAL_MARKETS["ETH"] * 10_150 // BPS  # +1.5 %: under the spread threshold
    t = elapse(env, 3_600, env.eth, new_price)
    assert env.oracle.get_price(env.eth, True) == env.oracle.get_price(env.eth, False) == new_price
    pin(env, t)
    pool = env.vault.pool_amount()
    added, grown = env.usd(500), 10_000 * WAD
    accept = MAX_UINT if is_long else 0
    tx = perp.increase_position(env.eth, is_long, added, grown, accept, sender=funded_trader)

    idx = indices_used(env, env.eth)
    assert idx.borrow == stored.borrow_index + rate * (t - stored.last_update)
    assert (idx.funding_long, idx.funding_short) == (0, 0)  # one side open: no funding
    change = predict_increase(before, is_long, added, grown, new_price, idx, cfg, env.scale)
    assert change.borrow_fee > 0
    after = Position.of(perp.get_position(funded_trader, env.eth, is_long))
    assert after == change.position
    assert after.size_tokens == before.size_tokens + tokens_for(grown, new_price, is_long)
    fees = change.position_fee + change.borrow_fee
    assert after.collateral == before.collateral + added - fees
    [log] = tx.decode_logs(perp.PositionUpdate)
    expect_update(log, change, funded_trader, env.eth, is_long)
    assert env.vault.pool_amount() == pool + change.position_fee + change.borrow_fee
    info = env.reader.position_info(funded_trader, env.eth, is_long)
    assert info.entry_price == entry_price(after.size_usd, after.size_tokens, is_long)
    assert env.vault.is_solvent()


@SIDES
def test_increase__collateral_only__no_fee_size_unchanged_acceptable_price_ignored(
    env, funded_trader, cfg, is_long
):
    perp = env.perp
    pin(env)
    open_position(env, funded_trader, env.eth, is_long, env.usd(1_000), 10_000 * WAD)
    before = Position.of(perp.get_position(funded_trader, env.eth, is_long))
    pool, collateral_bucket, _, _ = buckets(env.vault)
    trader_tokens = env.token.balanceOf(funded_trader)
    # the worst acceptable price for each side: it would refuse any size change
    worst = 0 if is_long else MAX_UINT
    added = env.usd(250) + 3

    pin(env)
    tx = perp.increase_position(env.eth, is_long, added, 0, worst, sender=funded_trader)

    idx = indices_used(env, env.eth)
    change = predict_increase(before, is_long, added, 0, 0, idx, cfg, env.scale)  # no price read
    assert change.position_fee == 0
    after = Position.of(perp.get_position(funded_trader, env.eth, is_long))
    assert after == change.position
    assert (after.size_usd, after.size_tokens) == (before.size_usd, before.size_tokens)
    assert after.collateral == before.collateral + added - change.borrow_fee
    [log] = tx.decode_logs(perp.PositionUpdate)
    expect_update(log, change, funded_trader, env.eth, is_long)
    assert env.token.balanceOf(funded_trader) == trader_tokens - added
    assert buckets(env.vault)[:2] == (
        pool + change.borrow_fee,
        collateral_bucket + added - change.borrow_fee,
    )
    assert env.vault.is_solvent()


# ---------------------------------------------------------------- fill prices


@SIDES
def test_increase__spread_on__long_opens_at_max_short_at_min(env, funded_trader, cfg, is_long):
    perp, oracle = env.perp, env.oracle
    ocfg = oracle.config()
    base = params.LOCAL_MARKETS["ETH"]
    # a 5 % move: beyond the spread threshold (push_fresh steps it through the 2 % jump
    # bound; the last push, beyond the threshold from the window's anchor, sets the spread)
    move_bps = 500
    assert ocfg.spread_threshold_bps < move_bps
    price = base * (BPS + move_bps) // BPS
    t = push_fresh(env, env.eth, price)
    assert oracle.price_data(env.eth).spread_until == t + ocfg.spread_duration
    max_price = spread_price(price, ocfg.spread_bps, True)
    min_price = spread_price(price, ocfg.spread_bps, False)
    assert max_price == -(-price * (BPS + ocfg.spread_bps) // BPS) > price
    assert min_price == price * (BPS - ocfg.spread_bps) // BPS < price
    fill = max_price if is_long else min_price
    size = 9_999 * WAD + 1

    pin(env, t)
    tx = perp.increase_position(env.eth, is_long, env.usd(1_000), size, fill, sender=funded_trader)

    [log] = tx.decode_logs(perp.PositionUpdate)
    assert log.price == fill
    pos = perp.get_position(funded_trader, env.eth, is_long)
    assert pos.size_tokens == tokens_for(size, fill, is_long)
    change = predict_open(env, is_long, env.usd(1_000), size, fill, cfg, indices_used(env, env.eth))
    expect_update(log, change, funded_trader, env.eth, is_long)


@SIDES
def test_increase__spread_on_one_better_than_fill__refused(env, funded_trader, is_long):
    ocfg = env.oracle.config()
    price = params.LOCAL_MARKETS["ETH"] * 10_500 // BPS
    t = push_fresh(env, env.eth, price)
    fill = spread_price(price, ocfg.spread_bps, is_long)
    # the raw keeper price would pass; the spread price is what counts
    better = fill - 1 if is_long else fill + 1
    pin(env, t)
    assert_refused(
        env, (funded_trader,), "perp: price not acceptable",
        env.perp.increase_position, env.eth, is_long, env.usd(1_000), 10_000 * WAD, better,
        sender=funded_trader,
    )


@SIDES
def test_increase__spread_on_collateral_only__reads_no_price(env, funded_trader, cfg, is_long):
    pin(env)
    open_position(env, funded_trader, env.eth, is_long, env.usd(1_000), 10_000 * WAD)
    price = params.LOCAL_MARKETS["ETH"] * 9_500 // BPS  # -5 %: spread on
    t = push_fresh(env, env.eth, price)
    pin(env, t)
    tx = env.perp.increase_position(env.eth, is_long, env.usd(10), 0, 0, sender=funded_trader)
    [log] = tx.decode_logs(env.perp.PositionUpdate)
    # adding collateral alone uses no price, so it reads none: the event logs 0
    assert log.price == 0 and log.size_delta == 0


# ---------------------------------------------------------------- refusals: inputs


def test_increase__unknown_market__refused(env, funded_trader):
    unknown = max(env.markets.values()) + 1
    assert not env.perp.is_market(unknown)
    assert_refused(
        env, (funded_trader,), "perp: unknown market",
        env.perp.increase_position, unknown, True, env.usd(100), 1_000 * WAD, MAX_UINT,
        sender=funded_trader,
    )


def test_increase__nothing_to_do__refused(env, funded_trader):
    assert_refused(
        env, (funded_trader,), "perp: nothing to do",
        env.perp.increase_position, env.eth, True, 0, 0, MAX_UINT, sender=funded_trader,
    )


@SIDES
def test_increase__new_position_without_size__refused_zero_size(env, funded_trader, is_long):
    assert_refused(
        env, (funded_trader,), "perp: zero size",
        env.perp.increase_position, env.eth, is_long, env.usd(100), 0, MAX_UINT,
        sender=funded_trader,
    )


@SIDES
def test_increase__new_position_without_collateral__refused_zero_collateral(
    env, funded_trader, is_long
):
    assert_refused(
        env, (funded_trader,), "perp: zero collateral",
        env.perp.increase_position, env.eth, is_long, 0, 1_000 * WAD, MAX_UINT if is_long else 0,
        sender=funded_trader,
    )


def test_increase__existing_position_size_without_collateral__paid_from_collateral(
    env, funded_trader, cfg
):
    pin(env)
    open_position(env, funded_trader, env.eth, True, env.usd(1_000), 10_000 * WAD)
    before = Position.of(env.perp.get_position(funded_trader, env.eth, True))
    pin(env)
    open_position(env, funded_trader, env.eth, True, 0, 5_000 * WAD)
    idx = indices_used(env, env.eth)
    price = env.oracle.get_price(env.eth, True)
    change = predict_increase(before, True, 0, 5_000 * WAD, price, idx, cfg, env.scale)
    assert Position.of(env.perp.get_position(funded_trader, env.eth, True)) == change.position
    assert change.position.collateral < before.collateral


# ---------------------------------------------------------------- refusals: pause and prices


def test_increase__paused__size_refused_for_new_and_existing_positions(
    env, funded_trader, deployer
):
    pin(env)
    open_position(env, funded_trader, env.eth, True, env.usd(1_000), 10_000 * WAD)
    env.configurator.set_paused(True, sender=deployer)
    for is_long in (True, False):
        assert_refused(
            env, (funded_trader,), "perp: paused",
            env.perp.increase_position, env.eth, is_long, env.usd(100), 1_000 * WAD,
            MAX_UINT if is_long else 0, sender=funded_trader,
        )


def test_increase__paused__collateral_only_still_allowed(env, funded_trader, deployer, cfg):
    pin(env)
    open_position(env, funded_trader, env.eth, True, env.usd(1_000), 10_000 * WAD)
    env.configurator.set_paused(True, sender=deployer)
    before = Position.of(env.perp.get_position(funded_trader, env.eth, True))
    pin(env)
    env.perp.increase_position(env.eth, True, env.usd(100), 0, 0, sender=funded_trader)
    idx = indices_used(env, env.eth)
    price = env.oracle.get_exit_price(env.eth, False)
    change = predict_increase(before, True, env.usd(100), 0, price, idx, cfg, env.scale)
    assert Position.of(env.perp.get_position(funded_trader, env.eth, True)) == change.position


def test_increase__paused_then_unpaused__opens_again(env, funded_trader, deployer):
    env.configurator.set_paused(True, sender=deployer)
    env.configurator.set_paused(False, sender=deployer)
    open_position(env, funded_trader, env.eth, False, env.usd(1_000), 10_000 * WAD)
    assert env.perp.get_position(funded_trader, env.eth, False).size_usd == 10_000 * WAD


@SIDES
def test_increase__acceptable_price_one_worse_than_fill__refused(env, funded_trader, is_long):
    price = env.oracle.get_price(env.eth, is_long)
    worse = price - 1 if is_long else price + 1  # a long wants to pay at most, a short at least
    assert_refused(
        env, (funded_trader,), "perp: price not acceptable",
        env.perp.increase_position, env.eth, is_long, env.usd(1_000), 10_000 * WAD, worse,
        sender=funded_trader,
    )


@SIDES
def test_increase__acceptable_price_equal_to_fill__accepted(env, funded_trader, is_long):
    price = env.oracle.get_price(env.eth, is_long)
    tx = env.perp.increase_position(
        env.eth, is_long, env.usd(1_000), 10_000 * WAD, price, sender=funded_trader
    )
    [log] = tx.decode_logs(env.perp.PositionUpdate)
    assert log.price == price


def test_increase__stale_price__open_and_grow_refused(env, funded_trader):
    pin(env)
    open_position(env, funded_trader, env.eth, True, env.usd(1_000), 10_000 * WAD)
    env.chain.mine(deltatime=env.oracle.config().max_price_age + 1)
    assert env.oracle.is_stale(env.eth)
    for is_long in (True, False):  # grow the long, open a short
        assert_refused(
            env, (funded_trader,), "oracle: stale price",
            env.perp.increase_position, env.eth, is_long, env.usd(100), 1_000 * WAD,
            MAX_UINT if is_long else 0, sender=funded_trader,
        )


def test_increase__stale_price_collateral_only_without_reference__still_accepted(
    env, funded_trader, cfg
):
    """Every price source down (stale keeper price, no reference feed): a trader can still top
    up a position, since adding collateral reads no price."""
    pin(env)
    open_position(env, funded_trader, env.eth, True, env.usd(1_000), 10_000 * WAD)
    env.chain.mine(deltatime=env.oracle.config().max_price_age + 1)
    assert env.oracle.reference_feed(env.eth).feed == "0x0000000000000000000000000000000000000000"
    with ape.reverts("oracle: no fresh price"):
        env.oracle.get_exit_price(env.eth, False)
    before = Position.of(env.perp.get_position(funded_trader, env.eth, True))
    pin(env)
    tx = env.perp.increase_position(env.eth, True, env.usd(100), 0, 0, sender=funded_trader)
    change = predict_increase(
        before, True, env.usd(100), 0, 0, indices_used(env, env.eth), cfg, env.scale
    )
    [log] = tx.decode_logs(env.perp.PositionUpdate)
    expect_update(log, change, funded_trader, env.eth, True)
    assert Position.of(env.perp.get_position(funded_trader, env.eth, True)) == change.position


def test_increase__dust_size_that_buys_zero_tokens__refused(env, funded_trader):
    """A size below one wei of index token (size x WAD / price rounds down to 0) would leave
    a position with no entry price: refused."""
    price = env.oracle.get_price(env.eth, True)
    dust = price // WAD - 1
    assert tokens_for(dust, price, True) == 0
    assert_refused(
        env, (funded_trader,), "perp: position too small",
        open_position, env, funded_trader, env.eth, True, env.usd(20), dust,
    )


def test_increase__add_collateral_to_unhealthy_position__allowed(env, funded_trader, deployer):
    """Adding collateral only reduces risk: it is accepted even while the position is
    below its maintenance margin, and it can make the position healthy again."""
    open_position(env, funded_trader, env.eth, True, env.usd(100), 4_000 * WAD)
    price = env.oracle.get_price(env.eth, True)
    push_fresh(env, env.eth, price * 9_750 // 10_000)  # -2.5 %: a 40x long is under water
    info = env.reader.position_info(funded_trader, env.eth, True)
    assert info.is_liquidatable
    tiny = env.usd(1)
    env.perp.increase_position(env.eth, True, tiny, 0, 0, sender=funded_trader)
    assert env.perp.get_position(funded_trader, env.eth, True).collateral > info.collateral
    env.perp.increase_position(env.eth, True, env.usd(500), 0, 0, sender=funded_trader)
    assert not env.reader.position_info(funded_trader, env.eth, True).is_liquidatable


# ---------------------------------------------------------------- refusals: position checks


def test_increase__fees_exceed_collateral__refused(env, funded_trader, cfg):
    size = 10_000 * WAD
    collateral = position_fee(size, cfg["position_fee_bps"], env.scale) - 1
    price = env.oracle.get_price(env.eth, True)
    reason = refused(predict_open, env, True, collateral, size, price, cfg)
    assert reason == "perp: fees exceed collateral"
    assert_refused(
        env, (funded_trader,), "perp: fees exceed collateral",
        env.perp.increase_position, env.eth, True, collateral, size, MAX_UINT, sender=funded_trader,
    )


@SIDES
def test_increase__one_step_past_max_leverage__refused_and_at_max_accepted(
    env, funded_trader, cfg, is_long
):
    price = env.oracle.get_price(env.eth, is_long)
    collateral = env.usd(100) + 7

    def ok(size):
        return refused(predict_open, env, is_long, collateral, size, price, cfg) is None

    size_max = largest(ok, 1_000 * WAD, collateral * env.scale * 100)
    reason = refused(predict_open, env, is_long, collateral, size_max + 1, price, cfg)
    assert reason == "perp: leverage too high"
    after_fee = collateral - position_fee(size_max, cfg["position_fee_bps"], env.scale)
    assert size_max * BPS <= cfg["max_leverage_bps"] * after_fee * env.scale
    accept = MAX_UINT if is_long else 0

    assert_refused(
        env, (funded_trader,), "perp: leverage too high",
        env.perp.increase_position, env.eth, is_long, collateral, size_max + 1, accept,
        sender=funded_trader,
    )
    env.perp.increase_position(env.eth, is_long, collateral, size_max, accept, sender=funded_trader)
    pos = env.perp.get_position(funded_trader, env.eth, is_long)
    assert (pos.size_usd, pos.collateral) == (size_max, after_fee)


@SIDES
def test_increase__collateral_one_unit_below_min_after_fee__refused_and_at_min_accepted(
    env, funded_trader, cfg, is_long
):
    price = env.oracle.get_price(env.eth, is_long)
    size = 100 * WAD

    def ok(collateral):
        return refused(predict_open, env, is_long, collateral, size, price, cfg) is None

    # the smallest collateral that passes: min collateral plus the fee, in token units
    fee = position_fee(size, cfg["position_fee_bps"], env.scale)
    smallest = cfg["min_collateral_usd"] // env.scale + fee
    assert ok(smallest)
    reason = refused(predict_open, env, is_long, smallest - 1, size, price, cfg)
    assert reason == "perp: collateral below min"
    accept = MAX_UINT if is_long else 0

    assert_refused(
        env, (funded_trader,), "perp: collateral below min",
        env.perp.increase_position, env.eth, is_long, smallest - 1, size, accept,
        sender=funded_trader,
    )
    env.perp.increase_position(env.eth, is_long, smallest, size, accept, sender=funded_trader)
    pos = env.perp.get_position(funded_trader, env.eth, is_long)
    assert pos.collateral * env.scale == cfg["min_collateral_usd"]


def test_increase__open_interest_past_max__refused_per_side(env, funded_trader, deployer, cfg):
    max_oi = 10_000 * WAD
    env.configurator.set_market_config(env.eth, {**cfg, "max_open_interest_usd": max_oi}, sender=deployer)
    open_position(env, funded_trader, env.eth, True, env.usd(1_000), 6_000 * WAD)
    room = max_oi - env.perp.open_interest(env.eth, True)[0]

    assert_refused(
        env, (funded_trader,), "perp: max open interest",
        env.perp.increase_position, env.eth, True, env.usd(100), room + 1, MAX_UINT,
        sender=funded_trader,
    )
    open_position(env, funded_trader, env.eth, True, env.usd(100), room)
    assert env.perp.open_interest(env.eth, True)[0] == max_oi
    # the cap is per side: shorts still have the whole room
    open_position(env, funded_trader, env.eth, False, env.usd(1_000), max_oi)
    assert env.perp.open_interest(env.eth, False)[0] == max_oi


def test_increase__reserve_past_pool_amount__refused_counting_both_sides(env, funded_trader, cfg):
    pool_wad = env.vault.pool_amount() * env.scale
    # reserve = ceil(open interest x factor / BPS) may reach the pool amount, not exceed it
    total_max = pool_wad * BPS // cfg["reserve_factor_bps"]
    assert bps_of(total_max, cfg["reserve_factor_bps"], True) <= pool_wad
    assert bps_of(total_max + 1, cfg["reserve_factor_bps"], True) > pool_wad
    long_size = total_max // 2
    open_position(env, funded_trader, env.eth, True, env.usd(40_000), long_size)
    assert env.vault.pool_amount() * env.scale > pool_wad  # the fee went to the pool...
    pool_wad = env.vault.pool_amount() * env.scale  # ...so the room is measured again
    total_max = pool_wad * BPS // cfg["reserve_factor_bps"]
    short_max = total_max - long_size

    assert_refused(
        env, (funded_trader,), "perp: reserve exceeded",
        env.perp.increase_position, env.eth, False, env.usd(40_000), short_max + 1, 0,
        sender=funded_trader,
    )
    open_position(env, funded_trader, env.eth, False, env.usd(40_000), short_max)
    assert env.reader.total_reserved_usd() == bps_of(total_max, cfg["reserve_factor_bps"], True)
    assert env.vault.reserved_amount() == to_tokens(env.reader.total_reserved_usd(), env.scale, True)
    assert env.vault.is_solvent()
