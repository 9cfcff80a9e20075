"""Perp.decrease_position: closing, partial closes, collateral withdrawals, payouts and
the pool's side of them, fill prices, refusals.

Every expected number comes from the reference model in helpers.py (the formulas of
Perp.vy with the same rounding). Prices are pushed one second apart, so a second of
borrowing accrues between an open and a close; the model takes it from the indices the
transaction settled with (or, to find a boundary before sending, from the stored index
and the borrowing rate).
"""

from __future__ import annotations

import ape
import pytest

from dataclasses import replace

from helpers import (
    assert_refused,
    BPS,
    MAX_UINT,
    WAD,
    ZERO_ADDRESS,
    Position,
    bps_of,
    buckets,
    ceil_div,
    config_of,
    elapse,
    expect_update,
    health,
    fast_reverts,  # noqa: F401 (autouse fixture)
    indices_at,
    indices_used,
    largest,
    open_position,
    pin,
    pnl_wad,
    predict_decrease,
    push_fresh,
    refused,
    spread_price,
    state_of,
    to_tokens,
)
from perpool import params

BASE = params.LOCAL_MARKETS["ETH"]  # the seeded price, anchor of the oracle's window
ODD = 12_345_678_901_234_567  # wei of price that make every rounding matter
OPEN_PRICE = BASE + ODD
# moves of 1.9 % from the anchor: under the 2 % spread threshold, so min == max
UP_PRICE = BASE * 10_190 // BPS + ODD // 3
DOWN_PRICE = BASE * 9_810 // BPS - ODD // 3
SIDES = pytest.mark.parametrize("is_long", [True, False], ids=["long", "short"])


@pytest.fixture(scope="module")
def cfg(env):
    return config_of(env.configurator, env.eth)


@pytest.fixture(scope="module")
def payee(accounts):
    """Receives a payout on the trader's behalf."""
    return accounts[7]


@pytest.fixture(scope="module")
def counterparty(accounts, env):
    """A second trader, on the other side of the market."""
    env.fund(accounts[8])
    return accounts[8]


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(
    env, funded_trader, cfg, payee, attacker, deployer, project, counterparty
):
    """Set up the module- and session-scoped fixtures before any test, so Ape's isolation
    never has to rebase a snapshot."""



def opened(env, trader, is_long, collateral, size, price=OPEN_PRICE):
    """Push `price`, open a position at it; return the stored position."""
    push_fresh(env, env.eth, price)
    pin(env)
    open_position(env, trader, env.eth, is_long, collateral, size)
    return Position.of(env.perp.get_position(trader, env.eth, is_long))


def decrease(env, trader, is_long, collateral_delta, size_delta, receiver=None, acceptable=None):
    if acceptable is None:
        acceptable = 0 if is_long else MAX_UINT
    receiver = receiver or trader
    return env.perp.decrease_position(
        env.eth, is_long, collateral_delta, size_delta, acceptable, receiver, sender=trader
    )


def settled(env, pos, is_long, collateral_delta, size_delta, price, cfg):
    """The model's change for a decrease just sent, with the indices it settled with."""
    idx = indices_used(env, env.eth)
    return predict_decrease(pos, is_long, collateral_delta, size_delta, price, idx, cfg, env.scale)


def withdraw_refused(env, pos, is_long, withdraw, price, idx, cfg):
    """The model's reason for refusing a withdrawal of `withdraw`, or None."""
    return refused(predict_decrease, pos, is_long, withdraw, 0, price, idx, cfg, env.scale)


def assert_settled(
    env, tx, change, trader, is_long, before_buckets, before_balances, receiver=None
):
    """Position, event, return value, buckets and balances all match the model's change."""
    receiver = receiver or trader
    perp, vault = env.perp, env.vault
    assert stored(env, trader, is_long) == change.position
    [log] = tx.decode_logs(perp.PositionUpdate)
    expect_update(log, change, trader, env.eth, is_long)
    assert tx.return_value == change.amount_out
    pool, collateral, escrow, insurance = before_buckets
    assert buckets(vault) == (
        pool + change.pool_delta,
        collateral + change.collateral_delta,
        escrow,
        insurance,
    )
    receiver_tokens, vault_tokens = before_balances
    assert env.token.balanceOf(receiver) == receiver_tokens + change.amount_out
    assert env.token.balanceOf(vault) == vault_tokens - change.amount_out
    assert vault.reserved_amount() == to_tokens(env.reader.total_reserved_usd(), env.scale, True)
    assert vault.is_solvent()


def stored(env, trader, is_long):
    """get_position as a Position. For a closed position the funding snapshot is left out:
    test_decrease__full_close__get_position_reads_all_zero checks it on its own."""
    pos = Position.of(env.perp.get_position(trader, env.eth, is_long))
    return replace(pos, funding_index=0) if pos.size_usd == 0 else pos


def balances(env, receiver):
    return env.token.balanceOf(receiver), env.token.balanceOf(env.vault)


# ---------------------------------------------------------------- full close


@pytest.mark.parametrize("move", ["profit", "loss"])
@SIDES
def test_decrease__full_close__pays_collateral_plus_pnl_minus_fees(env_any, trader, is_long, move):
    env, perp = env_any, env_any.perp
    env.fund(trader)
    cfg = config_of(env.configurator, env.eth)
    collateral, size = env.usd(2_000) + env.unit // 3, 30_000 * WAD + 123_456_789
    pos = opened(env, trader, is_long, collateral, size)
    # a long profits when the price rises, a short when it falls
    close = UP_PRICE if (move == "profit") == is_long else DOWN_PRICE
    push_fresh(env, env.eth, close)
    assert env.oracle.get_price(env.eth, True) == env.oracle.get_price(env.eth, False) == close
    before_buckets, before_balances = buckets(env.vault), balances(env, trader)

    pin(env)
    tx = decrease(env, trader, is_long, 0, size, acceptable=close)

    idx = indices_used(env, env.eth)
    change = predict_decrease(pos, is_long, 0, size, close, idx, cfg, env.scale)
    # the formulas, spelled out: PnL rounds against the trader, then to token units
    value = pos.size_tokens * close
    expected_pnl_wad = value // WAD - size if is_long else size - -(-value // WAD)
    assert (expected_pnl_wad > 0) == (move == "profit")
    # profit rounds down, loss rounds up
    if expected_pnl_wad >= 0:
        expected_pnl = expected_pnl_wad // env.scale
    else:
        expected_pnl = -ceil_div(-expected_pnl_wad, env.scale)
    assert change.pnl == expected_pnl
    fee = -(-(-(-size * cfg["position_fee_bps"] // BPS)) // env.scale)
    assert change.position_fee == fee
    assert change.borrow_fee > 0  # one second of borrowing since the open
    assert change.amount_out == pos.collateral + expected_pnl - fee - change.borrow_fee
    assert change.position == Position()
    assert_settled(env, tx, change, trader, is_long, before_buckets, before_balances)
    # the collateral bucket gives the position's collateral back; the pool pays the rest
    assert change.collateral_delta == -pos.collateral
    assert change.pool_delta == pos.collateral - change.amount_out
    assert perp.open_interest(env.eth, is_long) == (0, 0)
    assert env.reader.total_reserved_usd() == 0


@SIDES
def test_decrease__loss_beyond_collateral__pays_nothing_and_pool_absorbs(
    env, funded_trader, cfg, is_long
):
    perp, ocfg = env.perp, env.oracle.config()
    collateral = env.usd(100)
    size = 4_500 * WAD  # ~47x: a 5 % move wipes the collateral out twice over
    pos = opened(env, funded_trader, is_long, collateral, size, BASE)
    price = BASE * 9_500 // BPS if is_long else BASE * 10_500 // BPS
    push_fresh(env, env.eth, price)
    fill = spread_price(price, ocfg.spread_bps, not is_long)  # the move turned the spread on
    before_buckets, before_balances = buckets(env.vault), balances(env, funded_trader)

    pin(env)
    tx = decrease(env, funded_trader, is_long, 0, size)

    change = settled(env, pos, is_long, 0, size, fill, cfg)
    assert change.amount_out == 0
    left = pos.collateral + change.pnl - change.position_fee - change.borrow_fee
    assert change.bad_debt == -left > 0
    assert_settled(env, tx, change, funded_trader, is_long, before_buckets, before_balances)
    # the pool keeps the whole collateral and bears the rest of the loss
    assert change.pool_delta == pos.collateral
    [log] = tx.decode_logs(perp.PositionUpdate)
    assert log.bad_debt == change.bad_debt


def test_decrease__full_close_with_collateral_delta__ignores_it_and_pays_everything(
    env, funded_trader, cfg
):
    pos = opened(env, funded_trader, True, env.usd(1_000), 10_000 * WAD)
    push_fresh(env, env.eth, UP_PRICE)
    before_buckets, before_balances = buckets(env.vault), balances(env, funded_trader)
    pin(env)
    tx = decrease(env, funded_trader, True, pos.collateral * 10, pos.size_usd)
    change = settled(env, pos, True, 0, pos.size_usd, UP_PRICE, cfg)
    assert_settled(env, tx, change, funded_trader, True, before_buckets, before_balances)


def test_decrease__receiver__gets_the_payout_not_the_trader(env, funded_trader, payee, cfg):
    pos = opened(env, funded_trader, False, env.usd(1_000), 10_000 * WAD)
    push_fresh(env, env.eth, DOWN_PRICE)
    trader_tokens = env.token.balanceOf(funded_trader)
    before_buckets, before_balances = buckets(env.vault), balances(env, payee)
    pin(env)
    tx = decrease(env, funded_trader, False, 0, pos.size_usd, receiver=payee)
    change = settled(env, pos, False, 0, pos.size_usd, DOWN_PRICE, cfg)
    assert change.amount_out > pos.collateral  # a short in profit
    assert_settled(env, tx, change, funded_trader, False, before_buckets, before_balances, payee)
    assert env.token.balanceOf(funded_trader) == trader_tokens


@SIDES
def test_decrease__full_close__get_position_reads_all_zero(env, funded_trader, is_long):
    """get_position's NatSpec: "The stored position (all zero when none)"."""
    pos = opened(env, funded_trader, is_long, env.usd(1_000), 10_000 * WAD)
    assert pos.size_usd != 0
    pin(env)
    decrease(env, funded_trader, is_long, 0, pos.size_usd)
    assert tuple(env.perp.get_position(funded_trader, env.eth, is_long)) == (0, 0, 0, 0, 0)


def test_decrease__after_an_hour_of_skew__long_pays_funding_short_receives_it(
    env, funded_trader, counterparty, cfg
):
    perp = env.perp
    long_pos = opened(env, funded_trader, True, env.usd(2_000), 20_000 * WAD)
    pin(env)
    open_position(env, counterparty, env.eth, False, env.usd(1_000), 10_000 * WAD)
    short_pos = Position.of(perp.get_position(counterparty, env.eth, False))
    rates = env.reader.rates(env.eth)
    assert rates.funding_rate_long_per_second < 0 < rates.funding_rate_short_per_second
    elapse(env, 3_600, env.eth, OPEN_PRICE)

    for trader, pos, is_long in ((funded_trader, long_pos, True), (counterparty, short_pos, False)):
        before_buckets, before_balances = buckets(env.vault), balances(env, trader)
        pin(env)
        tx = decrease(env, trader, is_long, 0, pos.size_usd)
        idx = indices_used(env, env.eth)
        change = predict_decrease(pos, is_long, 0, pos.size_usd, OPEN_PRICE, idx, cfg, env.scale)
        # the heavier long side pays, the lighter short side receives
        assert (change.funding < 0) if is_long else (change.funding > 0)
        assert_settled(env, tx, change, trader, is_long, before_buckets, before_balances)
    assert env.vault.collateral_amount() == 0


# ---------------------------------------------------------------- partial close


@pytest.mark.parametrize(
    "is_long, move, withdraw",
    [
        (True, "profit", 0),
        (True, "loss", 150),
        (False, "profit", 150),
        (False, "loss", 0),
    ],
    ids=["long-profit", "long-loss-withdraw", "short-profit-withdraw", "short-loss"],
)
def test_decrease__partial_close__realises_pnl_pro_rata_with_rounding_against_trader(
    env_any, trader, is_long, move, withdraw
):
    env, perp = env_any, env_any.perp
    env.fund(trader)
    cfg = config_of(env.configurator, env.eth)
    size = 30_000 * WAD + 7
    pos = opened(env, trader, is_long, env.usd(3_000) + 1, size)
    close = UP_PRICE if (move == "profit") == is_long else DOWN_PRICE
    push_fresh(env, env.eth, close)
    size_delta = size // 3 + 1  # an odd fraction
    collateral_delta = env.usd(withdraw)
    before_buckets, before_balances = buckets(env.vault), balances(env, trader)

    pin(env)
    tx = decrease(env, trader, is_long, collateral_delta, size_delta, acceptable=close)

    idx = indices_used(env, env.eth)
    change = settled(env, pos, is_long, collateral_delta, size_delta, close, cfg)
    # tokens closed round down for a long (less profit now), up for a short
    product = pos.size_tokens * size_delta
    closed = product // size if is_long else -(-product // size)
    assert product % size != 0  # the rounding is exercised
    assert change.position.size_tokens == pos.size_tokens - closed
    assert change.position.size_usd == size - size_delta
    assert change.pnl == (
        pnl_wad(size_delta, closed, close, is_long) // env.scale
        if move == "profit"
        else -to_tokens(-pnl_wad(size_delta, closed, close, is_long), env.scale, True)
    )
    settle = change.pnl + change.funding - change.position_fee - change.borrow_fee
    if settle >= 0:  # profit beyond the fees is paid out; collateral is left as it was
        assert change.amount_out == collateral_delta + settle
        assert change.position.collateral == pos.collateral - collateral_delta
    else:  # the net loss comes out of the collateral left in the position
        assert change.amount_out == collateral_delta
        assert change.position.collateral == pos.collateral - collateral_delta + settle
    assert (settle >= 0) == (move == "profit")
    assert change.position.borrow_index == idx.borrow
    assert_settled(env, tx, change, trader, is_long, before_buckets, before_balances)
    left = change.position
    assert perp.open_interest(env.eth, is_long) == (left.size_usd, left.size_tokens)
    assert env.reader.total_reserved_usd() == bps_of(left.size_usd, cfg["reserve_factor_bps"], True)


def test_decrease__partial_closes_then_full__pool_gains_exactly_what_the_trader_lost(
    env, funded_trader, cfg
):
    """Three steps at three prices, each as the model says; in the end every token the
    trader paid in and did not get back is in the pool."""
    start_pool, start_tokens = env.vault.pool_amount(), env.token.balanceOf(funded_trader)
    collateral = env.usd(2_000)
    opened(env, funded_trader, True, collateral, 20_000 * WAD)
    paid = 0
    for price, size_delta in ((UP_PRICE, 5_000 * WAD + 3), (DOWN_PRICE, 7_000 * WAD), (BASE, None)):
        push_fresh(env, env.eth, price)
        pos = Position.of(env.perp.get_position(funded_trader, env.eth, True))
        delta = pos.size_usd if size_delta is None else size_delta
        pin(env)
        tx = decrease(env, funded_trader, True, 0, delta)
        change = settled(env, pos, True, 0, delta, price, cfg)
        assert stored(env, funded_trader, True) == change.position
        assert tx.return_value == change.amount_out
        paid += change.amount_out
    assert env.perp.get_position(funded_trader, env.eth, True).size_usd == 0
    assert env.token.balanceOf(funded_trader) == start_tokens - collateral + paid
    assert env.vault.pool_amount() - start_pool == collateral - paid
    assert env.vault.collateral_amount() == 0
    assert env.vault.reserved_amount() == env.reader.total_reserved_usd() == 0
    assert env.vault.is_solvent()


def test_decrease__short_closed_to_dust__refused(env, funded_trader):
    """Closing all but one wei of a short's size rounds the tokens closed up to all of
    them, which would leave a position with no entry price: refused."""
    pos = opened(env, funded_trader, False, env.usd(1_000), 10_000 * WAD)
    pin(env)
    assert_refused(
        env, (funded_trader,), "perp: position too small",
        decrease, env, funded_trader, False, 0, pos.size_usd - 1,
    )


# ---------------------------------------------------------------- collateral only


@SIDES
def test_decrease__withdraw_collateral_only__pays_it_out_settles_borrowing_no_position_fee(
    env, funded_trader, cfg, is_long
):
    pos = opened(env, funded_trader, is_long, env.usd(1_000) + 11, 10_000 * WAD)
    t = push_fresh(env, env.eth, DOWN_PRICE if is_long else UP_PRICE)  # a loss: still healthy
    withdraw = env.usd(300) + 5
    before_buckets, before_balances = buckets(env.vault), balances(env, funded_trader)

    pin(env, t)
    # acceptable price is ignored without a size change: the worst value for each side
    tx = decrease(env, funded_trader, is_long, withdraw, 0, acceptable=MAX_UINT if is_long else 0)

    price = env.oracle.get_price(env.eth, not is_long)
    idx = indices_used(env, env.eth)
    assert idx.borrow > pos.borrow_index  # a second of borrowing since the open
    change = predict_decrease(pos, is_long, withdraw, 0, price, idx, cfg, env.scale)
    assert (change.position_fee, change.pnl) == (0, 0)
    assert change.amount_out == withdraw
    assert change.position.collateral == pos.collateral - withdraw - change.borrow_fee
    assert change.position.size_usd == pos.size_usd
    assert change.position.size_tokens == pos.size_tokens
    assert_settled(env, tx, change, funded_trader, is_long, before_buckets, before_balances)
    # the pool only takes the borrowing fee
    assert change.pool_delta == change.borrow_fee


@SIDES
def test_decrease__withdraw_to_one_unit_past_maintenance__refused_would_be_liquidatable(
    env, funded_trader, cfg, is_long
):
    ocfg = env.oracle.config()
    pos = opened(env, funded_trader, is_long, env.usd(1_000), 10_000 * WAD, BASE)
    # an 8 % move against the position: a loss of ~$800 of the $990 left after the fee
    raw = BASE * 9_200 // BPS if is_long else BASE * 10_800 // BPS
    t = push_fresh(env, env.eth, raw)
    price = spread_price(raw, ocfg.spread_bps, not is_long)
    assert env.oracle.get_price(env.eth, not is_long) == price
    idx = indices_at(env, env.eth, t)

    def ok(withdraw):
        return withdraw_refused(env, pos, is_long, withdraw, price, idx, cfg) is None

    w_max = largest(ok, 0, pos.collateral)
    reason = withdraw_refused(env, pos, is_long, w_max + 1, price, idx, cfg)
    assert reason == "perp: would be liquidatable"
    after = predict_decrease(pos, is_long, w_max, 0, price, idx, cfg, env.scale).position
    # the margin left is the maintenance margin, to the token unit
    remaining, maintenance = health(after, is_long, price, idx, cfg, env.scale)
    assert 0 <= remaining - maintenance < env.scale

    pin(env, t)
    assert_refused(
        env, (funded_trader,), "perp: would be liquidatable",
        decrease, env, funded_trader, is_long, w_max + 1, 0,
    )
    pin(env, t)
    decrease(env, funded_trader, is_long, w_max, 0)
    assert Position.of(env.perp.get_position(funded_trader, env.eth, is_long)) == after
    assert not env.reader.position_info(funded_trader, env.eth, is_long).is_liquidatable


def test_decrease__withdraw_one_unit_past_max_leverage__refused(env, funded_trader, cfg):
    pos = opened(env, funded_trader, True, env.usd(1_000), 10_000 * WAD)
    t = push_fresh(env, env.eth, OPEN_PRICE)
    idx = indices_at(env, env.eth, t)

    def ok(withdraw):
        return withdraw_refused(env, pos, True, withdraw, OPEN_PRICE, idx, cfg) is None

    w_max = largest(ok, 0, pos.collateral)
    reason = withdraw_refused(env, pos, True, w_max + 1, OPEN_PRICE, idx, cfg)
    assert reason == "perp: leverage too high"
    pin(env, t)
    assert_refused(
        env, (funded_trader,), "perp: leverage too high",
        decrease, env, funded_trader, True, w_max + 1, 0,
    )
    pin(env, t)
    decrease(env, funded_trader, True, w_max, 0)
    left = env.perp.get_position(funded_trader, env.eth, True).collateral
    assert pos.size_usd * BPS <= cfg["max_leverage_bps"] * left * env.scale


def test_decrease__withdraw_one_unit_below_min_collateral__refused(env, funded_trader, cfg):
    pos = opened(env, funded_trader, False, env.usd(50), 100 * WAD)
    t = push_fresh(env, env.eth, OPEN_PRICE)
    idx = indices_at(env, env.eth, t)

    def ok(withdraw):
        return withdraw_refused(env, pos, False, withdraw, OPEN_PRICE, idx, cfg) is None

    w_max = largest(ok, 0, pos.collateral)
    reason = withdraw_refused(env, pos, False, w_max + 1, OPEN_PRICE, idx, cfg)
    assert reason == "perp: collateral below min"
    pin(env, t)
    assert_refused(
        env, (funded_trader,), "perp: collateral below min",
        decrease, env, funded_trader, False, w_max + 1, 0,
    )
    pin(env, t)
    decrease(env, funded_trader, False, w_max, 0)
    left = env.perp.get_position(funded_trader, env.eth, False)
    assert left.collateral * env.scale == cfg["min_collateral_usd"]


# ---------------------------------------------------------------- fill prices


@SIDES
def test_decrease__spread_on__long_closes_at_min_short_at_max(env, funded_trader, cfg, is_long):
    ocfg = env.oracle.config()
    pos = opened(env, funded_trader, is_long, env.usd(1_000), 10_000 * WAD, BASE)
    price = BASE * 10_400 // BPS  # +4 %: the spread turns on
    t = push_fresh(env, env.eth, price)
    fill = spread_price(price, ocfg.spread_bps, not is_long)
    if is_long:
        assert fill == price * (BPS - ocfg.spread_bps) // BPS
    else:
        assert fill == ceil_div(price * (BPS + ocfg.spread_bps), BPS)
    half = pos.size_usd // 2

    pin(env, t)
    tx = decrease(env, funded_trader, is_long, 0, half, acceptable=fill)

    [log] = tx.decode_logs(env.perp.PositionUpdate)
    assert log.price == fill
    change = settled(env, pos, is_long, 0, half, fill, cfg)
    expect_update(log, change, funded_trader, env.eth, is_long)
    # withdrawing collateral reads the keeper price on the same side
    pin(env, t)
    tx = decrease(env, funded_trader, is_long, env.usd(10), 0)
    assert tx.decode_logs(env.perp.PositionUpdate)[0].price == fill


@SIDES
def test_decrease__acceptable_price_one_better_than_fill__refused(env, funded_trader, is_long):
    pos = opened(env, funded_trader, is_long, env.usd(1_000), 10_000 * WAD)
    price = env.oracle.get_price(env.eth, not is_long)
    better = price + 1 if is_long else price - 1  # a long wants at least, a short at most
    for size_delta in (pos.size_usd // 2, pos.size_usd):
        assert_refused(
            env, (funded_trader,), "perp: price not acceptable",
            decrease, env, funded_trader, is_long, 0, size_delta, acceptable=better,
        )


@SIDES
def test_decrease__acceptable_price_equal_to_fill__accepted(env, funded_trader, is_long):
    pos = opened(env, funded_trader, is_long, env.usd(1_000), 10_000 * WAD)
    price = env.oracle.get_price(env.eth, not is_long)
    tx = decrease(env, funded_trader, is_long, 0, pos.size_usd, acceptable=price)
    assert tx.decode_logs(env.perp.PositionUpdate)[0].price == price


# ---------------------------------------------------------------- stale prices and pause


def test_decrease__stale_price_full_close_without_reference__refused_no_fresh_price(
    env, funded_trader
):
    pos = opened(env, funded_trader, True, env.usd(1_000), 10_000 * WAD)
    env.chain.mine(deltatime=env.oracle.config().max_price_age + 1)
    assert env.oracle.is_stale(env.eth)
    assert env.oracle.reference_feed(env.eth).feed == ZERO_ADDRESS
    for size_delta in (pos.size_usd, pos.size_usd // 2):
        assert_refused(
            env, (funded_trader,), "oracle: no fresh price",
            decrease, env, funded_trader, True, 0, size_delta,
        )


def test_decrease__stale_price_collateral_withdrawal__refused_stale_price(env, funded_trader):
    pos = opened(env, funded_trader, False, env.usd(1_000), 10_000 * WAD)
    env.chain.mine(deltatime=env.oracle.config().max_price_age + 1)
    # with or without a partial close: taking collateral out needs a fresh keeper price
    for size_delta in (0, pos.size_usd // 2):
        assert_refused(
            env, (funded_trader,), "oracle: stale price",
            decrease, env, funded_trader, False, env.usd(10), size_delta,
        )


@SIDES
def test_decrease__stale_price_with_reference__closes_at_fallback_price_in_pools_favour(
    env, funded_trader, deployer, project, cfg, is_long
):
    pos = opened(env, funded_trader, is_long, env.usd(1_000), 10_000 * WAD)
    feed = deployer.deploy(project.TestFeed, 8)
    answer = 3_010 * 10**8 + 98_765_432
    feed.set_answer(answer, 0, sender=deployer)
    env.oracle.set_reference_feed(env.eth, feed, 86_400, sender=deployer)
    env.chain.mine(deltatime=env.oracle.config().max_price_age + 1)
    feed.set_answer(answer, 0, sender=deployer)
    fallback = spread_price(answer * 10**10, env.oracle.config().fallback_spread_bps, not is_long)
    assert fallback != answer * 10**10
    assert env.oracle.is_stale(env.eth)
    before_buckets, before_balances = buckets(env.vault), balances(env, funded_trader)

    pin(env)
    tx = decrease(env, funded_trader, is_long, 0, pos.size_usd)

    change = settled(env, pos, is_long, 0, pos.size_usd, fallback, cfg)
    assert_settled(env, tx, change, funded_trader, is_long, before_buckets, before_balances)


def test_decrease__paused__partial_close_withdrawal_and_full_close_allowed(
    env, funded_trader, deployer, cfg
):
    pos = opened(env, funded_trader, True, env.usd(1_000), 10_000 * WAD)
    env.configurator.set_paused(True, sender=deployer)
    pin(env)
    decrease(env, funded_trader, True, env.usd(100), 2_000 * WAD)
    pin(env)
    decrease(env, funded_trader, True, env.usd(100), 0)
    left = Position.of(env.perp.get_position(funded_trader, env.eth, True))
    assert left.size_usd == pos.size_usd - 2_000 * WAD
    pin(env)
    tx = decrease(env, funded_trader, True, 0, left.size_usd)
    change = settled(env, left, True, 0, left.size_usd, OPEN_PRICE, cfg)
    assert tx.return_value == change.amount_out
    assert env.perp.get_position(funded_trader, env.eth, True).size_usd == 0


# ---------------------------------------------------------------- refusals: inputs


def test_decrease__unknown_market__refused(env, funded_trader):
    opened(env, funded_trader, True, env.usd(1_000), 10_000 * WAD)
    unknown = max(env.markets.values()) + 1
    assert_refused(
        env, (funded_trader,), "perp: unknown market",
        env.perp.decrease_position, unknown, True, 0, 10_000 * WAD, 0, funded_trader,
        sender=funded_trader,
    )


def test_decrease__zero_receiver__refused(env, funded_trader):
    opened(env, funded_trader, True, env.usd(1_000), 10_000 * WAD)
    assert_refused(
        env, (funded_trader,), "perp: zero receiver",
        env.perp.decrease_position, env.eth, True, 0, 10_000 * WAD, 0, ZERO_ADDRESS,
        sender=funded_trader,
    )


def test_decrease__nothing_to_do__refused(env, funded_trader):
    opened(env, funded_trader, True, env.usd(1_000), 10_000 * WAD)
    assert_refused(
        env, (funded_trader,), "perp: nothing to do",
        decrease, env, funded_trader, True, 0, 0,
    )


@SIDES
def test_decrease__no_position_on_that_side__refused(env, funded_trader, attacker, is_long):
    # the trader holds the other side; the attacker holds nothing
    opened(env, funded_trader, not is_long, env.usd(1_000), 10_000 * WAD)
    for account in (funded_trader, attacker):
        assert_refused(
            env, (funded_trader, attacker), "perp: no position",
            decrease, env, account, is_long, 0, 1_000 * WAD,
        )


def test_decrease__size_one_wei_beyond_position__refused(env, funded_trader):
    pos = opened(env, funded_trader, False, env.usd(1_000), 10_000 * WAD)
    assert_refused(
        env, (funded_trader,), "perp: size exceeds position",
        decrease, env, funded_trader, False, 0, pos.size_usd + 1,
    )


def test_decrease__withdraw_more_than_collateral__refused_insufficient_collateral(
    env, funded_trader
):
    pos = opened(env, funded_trader, True, env.usd(1_000), 10_000 * WAD)
    assert_refused(
        env, (funded_trader,), "perp: insufficient collateral",
        decrease, env, funded_trader, True, pos.collateral + 1, pos.size_usd // 2,
    )


def test_decrease__withdraw_all_with_net_loss__refused_insufficient_collateral(
    env, funded_trader, cfg
):
    pos = opened(env, funded_trader, True, env.usd(1_000), 10_000 * WAD)
    t = push_fresh(env, env.eth, DOWN_PRICE)
    idx = indices_at(env, env.eth, t)
    half = pos.size_usd // 2
    # all the collateral out, while half the size closes at a loss that needs some of it
    assert (
        refused(predict_decrease, pos, True, pos.collateral, half, DOWN_PRICE, idx, cfg, env.scale)
        == "perp: insufficient collateral"
    )
    pin(env, t)
    assert_refused(
        env, (funded_trader,), "perp: insufficient collateral",
        decrease, env, funded_trader, True, pos.collateral, half,
    )
