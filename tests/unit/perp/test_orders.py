"""OrderBook: placing, executing, updating and cancelling orders; the timing rules.

Every fill is checked against the reference model at the oracle price the fill used, and
every refusal leaves the order book, the Vault and the positions unchanged. Time is
pinned: an order placed at t needs a price observed after t (`push_fresh`).
"""

from __future__ import annotations

import re

import ape
import pytest

from helpers import (
    MAX_UINT,
    WAD,
    Indices,
    Position,
    config_of,
    fast_reverts,  # noqa: F401 (autouse fixture)
    open_position,
    pin,
    position_fee,
    predict_decrease,
    tokens_for,
)
from orders_helpers import (
    land,
    BY_OWNER,
    CANCELLED,
    EXECUTED,
    EXPIRED,
    FEE,
    LIMIT_INCREASE,
    MARKET_DECREASE,
    MARKET_INCREASE,
    NOT_FOUND,
    PENDING,
    PRICE_NOT_ACCEPTABLE,
    PRICE_NOT_NEWER,
    PRICE_STALE,
    STOP_LOSS,
    TAKE_PROFIT,
    TOO_EARLY,
    TRIGGER_NOT_MET,
    execute,
    exists,
    fill_price,
    moved,
    order_state,
    place,
    status,
)
from perpool import params

SIDES = pytest.mark.parametrize("is_long", [True, False], ids=["long", "short"])
SIZE = 10_000 * WAD
SEED = params.LOCAL_MARKETS["ETH"]


@pytest.fixture(scope="module")
def cfg(env):
    return config_of(env.configurator, env.eth)


@pytest.fixture(scope="module")
def receiver(accounts):
    """Where keepers have their fees credited."""
    return accounts[9]


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, funded_trader, counterparty, cfg, receiver, attacker, deployer):
    """Module fixtures before any test (Ape's isolation never rebases a snapshot)."""


def refused(env, accounts, ids, reason, call, *args, **kwargs):
    before = order_state(env, ids, accounts)
    with ape.reverts(reason):
        call(*args, **kwargs)
    assert order_state(env, ids, accounts) == before


# ---------------------------------------------------------------- create


@SIDES
def test_create__market_increase__escrows_collateral_and_fee_and_records_the_order(env, funded_trader, is_long):
    t = pin(env)
    balance = env.token.balanceOf(funded_trader)
    escrow = env.vault.escrow_amount()
    collateral = env.usd(1_000)

    oid, tx = place(env, funded_trader, MARKET_INCREASE, is_long, collateral, SIZE, acceptable=123 * WAD)

    o = env.orders.get_order(oid)
    assert (o.owner, o.market, o.kind, o.is_long) == (funded_trader.address, env.eth, MARKET_INCREASE, is_long)
    assert (o.collateral_delta, o.size_delta, o.acceptable_price, o.trigger_price) == (collateral, SIZE, 123 * WAD, 0)
    assert (o.execution_fee, o.placed_at) == (FEE, t)
    assert o.price_floor == max(t, env.oracle.price_timestamp(env.eth))
    assert env.token.balanceOf(funded_trader) == balance - collateral - FEE
    assert env.vault.escrow_amount() == escrow + collateral + FEE
    assert env.orders.next_order_id() == oid + 1
    log = tx.decode_logs(env.orders.OrderCreated)[0]
    assert (log.order_id, log.owner, log.market, log.kind) == (oid, funded_trader.address, env.eth, MARKET_INCREASE)
    assert (log.collateral_delta, log.size_delta, log.execution_fee, log.placed_at) == (collateral, SIZE, FEE, t)
    assert env.vault.is_solvent()


def test_create__decrease__escrows_only_the_fee_and_any_acceptable_price_is_capped(env, funded_trader):
    escrow = env.vault.escrow_amount()
    oid, _ = place(env, funded_trader, MARKET_DECREASE, False, env.usd(5), SIZE, acceptable=MAX_UINT)
    assert env.vault.escrow_amount() == escrow + FEE
    assert env.orders.get_order(oid).acceptable_price == 2**96 - 1  # above every oracle price


def test_create__price_pushed_with_a_future_timestamp__is_the_orders_floor(env, funded_trader):
    """A keeper may push an observation a few seconds ahead of the block; an order placed
    after it must not fill at that already-known price."""
    now = pin(env, env.chain.blocks.head.timestamp + 1)
    ahead = now + env.oracle.config().max_future_skew
    env.oracle.set_prices([env.eth], [moved(SEED, 50)], ahead, sender=env.keeper)
    pin(env, now + 1)
    oid, _ = place(env, funded_trader, MARKET_INCREASE, True, env.usd(1_000), SIZE)
    o = env.orders.get_order(oid)
    assert o.placed_at == now + 1 < o.price_floor == ahead
    assert status(env, oid) == (PENDING, PRICE_NOT_NEWER)


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"market": 99}, "orders: unknown market"),
        ({"kind": 5}, "orders: bad kind"),
        ({"fee": FEE - 1}, "orders: fee below min"),
        ({"fee": 2**64}, "orders: fee too large"),
        ({"size": 0, "collateral": 0}, "orders: nothing to do"),
        ({"market": 2**16 + 1}, "orders: unknown market"),
        ({"size": 2**128}, "orders: size too large"),
        ({"collateral": 2**96}, "orders: collateral too large"),
        ({"trigger": 1}, "orders: trigger on market order"),
        ({"kind": LIMIT_INCREASE, "trigger": 0}, "orders: zero trigger"),
        ({"kind": LIMIT_INCREASE, "trigger": 2**96}, "orders: trigger too large"),
        ({"kind": MARKET_DECREASE, "size": 0, "collateral": 0}, "orders: nothing to do"),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(v),
)
def test_create__bad_input__named_refusal_and_nothing_changes(env, funded_trader, change, reason):
    args = {"market": env.eth, "kind": MARKET_INCREASE, "collateral": env.usd(100), "size": SIZE, "trigger": 0, "fee": FEE}
    args.update(change)
    refused(
        env, (funded_trader,), [], reason,
        env.orders.create_order,
        args["market"], args["kind"], True, args["collateral"], args["size"], MAX_UINT, args["trigger"], args["fee"],
        sender=funded_trader,
    )


def test_create__increase_while_paused_or_closing__refused_decrease_allowed(env, funded_trader, deployer):
    env.configurator.set_paused(True, sender=deployer)
    refused(env, (funded_trader,), [], "orders: paused", env.orders.create_order,
            env.eth, MARKET_INCREASE, True, env.usd(100), SIZE, MAX_UINT, 0, FEE, sender=funded_trader)
    place(env, funded_trader, MARKET_DECREASE, True, 0, SIZE)
    env.configurator.set_paused(False, sender=deployer)
    env.configurator.close_market(env.eth, sender=deployer)
    refused(env, (funded_trader,), [], "orders: market closing", env.orders.create_order,
            env.eth, LIMIT_INCREASE, True, env.usd(100), SIZE, MAX_UINT, SEED // 2, FEE, sender=funded_trader)


# ---------------------------------------------------------------- wrong-side triggers


TRIGGER_CASES = [
    # (kind, is_long, trigger relative to the fill price: holds already when ...)
    (LIMIT_INCREASE, True),  # long limit: fills at or below the trigger
    (LIMIT_INCREASE, False),  # short limit: at or above
    (TAKE_PROFIT, True),  # long take-profit: at or above
    (TAKE_PROFIT, False),  # short take-profit: at or below
    (STOP_LOSS, True),  # long stop-loss: at or below
    (STOP_LOSS, False),  # short stop-loss: at or above
]
TRIGGER_IDS = ["limit-long", "limit-short", "tp-long", "tp-short", "sl-long", "sl-short"]


def waits_below(kind: int, is_long: bool) -> bool:
    """True when the order waits for the price to fall to its trigger."""
    return (kind == TAKE_PROFIT) != is_long


@pytest.mark.parametrize("kind, is_long", TRIGGER_CASES, ids=TRIGGER_IDS)
def test_create__trigger_already_met__refused_one_wei_off_accepted(env, funded_trader, kind, is_long):
    """Incident 6 (Gains forks): a trigger on the wrong side of the price. It would fill at
    once (at the oracle price, never the trigger); it is refused, and the boundary is exact."""
    pin(env)
    price = fill_price(env, env.eth, kind, is_long)
    met = price  # the trigger holds at equality
    unmet = price - 1 if waits_below(kind, is_long) else price + 1
    collateral = env.usd(100) if kind == LIMIT_INCREASE else 0
    refused(env, (funded_trader,), [], "orders: trigger already met", env.orders.create_order,
            env.eth, kind, is_long, collateral, SIZE, MAX_UINT if is_long else 0, met, FEE, sender=funded_trader)
    oid, _ = place(env, funded_trader, kind, is_long, collateral, SIZE, trigger=unmet)
    assert env.orders.get_order(oid).trigger_price == unmet


# ---------------------------------------------------------------- market orders fill at a newer price


@SIDES
def test_execute__market_increase__waits_for_a_newer_price_then_fills_at_it(env, funded_trader, receiver, cfg, is_long):
    collateral = env.usd(1_000)
    oid, place_tx = place(env, funded_trader, MARKET_INCREASE, is_long, collateral, SIZE)
    escrow = env.vault.escrow_amount()

    # the stored price was observed before the order: not used
    tx = execute(env, [oid], receiver)
    assert tuple(tx.return_value) == (0, 0) and exists(env, oid)
    assert status(env, oid) == (PENDING, PRICE_NOT_NEWER)

    t = land(env, env.eth, moved(SEED, 100))
    fill = fill_price(env, env.eth, MARKET_INCREASE, is_long)
    assert status(env, oid) == (EXECUTED, 0)
    tx = execute(env, [oid], receiver)

    assert tuple(tx.return_value) == (1, 0) and not exists(env, oid)
    pos = env.perp.get_position(funded_trader, env.eth, is_long)
    fee = position_fee(SIZE, cfg["position_fee_bps"], env.scale)
    assert (pos.size_usd, pos.size_tokens) == (SIZE, tokens_for(SIZE, fill, is_long))
    assert pos.collateral == collateral - fee
    log = tx.decode_logs(env.orders.OrderExecuted)[0]
    assert (log.order_id, log.price, log.execution_fee, log.fee_receiver) == (oid, fill, FEE, receiver.address)
    assert log.price != SEED  # the price at placement was not the fill
    assert env.oracle.price_timestamp(env.eth) == t
    assert env.vault.claimable(receiver) == FEE
    assert env.vault.escrow_amount() == escrow - collateral - FEE
    assert env.vault.is_solvent()
    assert place_tx.timestamp < t


@SIDES
def test_execute__market_decrease__fills_at_newer_price_and_credits_the_owner(env, funded_trader, receiver, cfg, is_long):
    pin(env)
    open_position(env, funded_trader, env.eth, is_long, env.usd(2_000), SIZE)
    before = Position.of(env.perp.get_position(funded_trader, env.eth, is_long))
    half = SIZE // 2
    oid, _ = place(env, funded_trader, MARKET_DECREASE, is_long, env.usd(100), half)
    land(env, env.eth, moved(SEED, 150 if is_long else -150))
    fill = fill_price(env, env.eth, MARKET_DECREASE, is_long)
    idx = Indices.of_state(env.perp.current_indices(env.eth))
    change = predict_decrease(before, is_long, env.usd(100), half, fill, idx, cfg, env.scale)
    balance = env.token.balanceOf(funded_trader)

    tx = execute(env, [oid], receiver)

    assert tuple(tx.return_value) == (1, 0)
    pos = Position.of(env.perp.get_position(funded_trader, env.eth, is_long))
    assert pos == change.position
    # the payout is credited, never transferred mid-batch
    assert env.token.balanceOf(funded_trader) == balance
    assert env.vault.claimable(funded_trader) == change.amount_out > 0
    assert tx.decode_logs(env.orders.OrderExecuted)[0].amount_credited == change.amount_out
    env.vault.claim(funded_trader, sender=funded_trader)
    assert env.token.balanceOf(funded_trader) == balance + change.amount_out


@SIDES
def test_execute__decrease_beyond_the_position__closes_all_of_it(env, funded_trader, receiver, cfg, is_long):
    pin(env)
    open_position(env, funded_trader, env.eth, is_long, env.usd(2_000), SIZE)
    before = Position.of(env.perp.get_position(funded_trader, env.eth, is_long))
    oid, _ = place(env, funded_trader, MARKET_DECREASE, is_long, 0, 2**128 - 1)
    land(env, env.eth, SEED)
    fill = fill_price(env, env.eth, MARKET_DECREASE, is_long)
    idx = Indices.of_state(env.perp.current_indices(env.eth))
    change = predict_decrease(before, is_long, 0, SIZE, fill, idx, cfg, env.scale)
    execute(env, [oid], receiver)
    assert env.perp.get_position(funded_trader, env.eth, is_long).size_usd == 0
    assert env.vault.claimable(funded_trader) == change.amount_out


def test_execute__stale_price__waits_and_then_fills_after_a_fresh_push(env, funded_trader, receiver):
    oid, _ = place(env, funded_trader, MARKET_INCREASE, True, env.usd(1_000), SIZE)
    pin(env, env.oracle.price_timestamp(env.eth) + env.oracle.config().max_price_age + 1)
    env.chain.mine()
    assert status(env, oid) == (PENDING, PRICE_STALE)
    assert tuple(execute(env, [oid], receiver).return_value) == (0, 0)
    land(env, env.eth, SEED)
    assert tuple(execute(env, [oid], receiver).return_value) == (1, 0)


def test_execute__unknown_or_done_order__skipped(env, funded_trader, receiver):
    oid, _ = place(env, funded_trader, MARKET_INCREASE, True, env.usd(1_000), SIZE)
    land(env, env.eth, SEED)
    execute(env, [oid], receiver)
    assert status(env, oid) == (PENDING, NOT_FOUND)
    assert status(env, 10**9) == (PENDING, NOT_FOUND)
    tx = execute(env, [oid, 10**9], receiver)
    assert tuple(tx.return_value) == (0, 0)
    assert env.vault.claimable(receiver) == FEE  # paid once


# ---------------------------------------------------------------- acceptable price


@SIDES
def test_execute__market_order_price_not_acceptable__cancelled_collateral_back_fee_to_keeper(env, funded_trader, receiver, is_long):
    pin(env)
    worse = moved(SEED, 100 if is_long else -100)  # the price moves against the buyer/seller
    acceptable = SEED  # exactly the old price: the new one is 1 % worse
    collateral = env.usd(1_000)
    oid, _ = place(env, funded_trader, MARKET_INCREASE, is_long, collateral, SIZE, acceptable=acceptable)
    land(env, env.eth, worse)
    assert status(env, oid) == (CANCELLED, PRICE_NOT_ACCEPTABLE)

    tx = execute(env, [oid], receiver)

    assert tuple(tx.return_value) == (0, 1) and not exists(env, oid)
    log = tx.decode_logs(env.orders.OrderCancelled)[0]
    assert (log.reason_code, log.reason, log.refund, log.fee_paid) == (
        PRICE_NOT_ACCEPTABLE, "orders: price not acceptable", collateral, FEE)
    assert log.fee_receiver == receiver.address
    assert env.vault.claimable(funded_trader) == collateral
    assert env.vault.claimable(receiver) == FEE
    assert env.perp.get_position(funded_trader, env.eth, is_long).size_usd == 0


@SIDES
def test_execute__market_order_at_exactly_the_acceptable_price__fills(env, funded_trader, receiver, is_long):
    oid, _ = place(env, funded_trader, MARKET_INCREASE, is_long, env.usd(1_000), SIZE, acceptable=moved(SEED, 100 if is_long else -100))
    land(env, env.eth, moved(SEED, 100 if is_long else -100))
    assert tuple(execute(env, [oid], receiver).return_value) == (1, 0)


# ---------------------------------------------------------------- triggers


@pytest.mark.parametrize("kind, is_long", TRIGGER_CASES, ids=TRIGGER_IDS)
def test_execute__trigger__pending_one_wei_short_then_fills_at_the_oracle_price(env, funded_trader, receiver, cfg, kind, is_long):
    pin(env)
    if kind != LIMIT_INCREASE:
        open_position(env, funded_trader, env.eth, is_long, env.usd(2_000), SIZE)
    below = waits_below(kind, is_long)
    trigger = moved(SEED, -100 if below else 100)
    collateral = env.usd(1_000) if kind == LIMIT_INCREASE else 0
    oid, _ = place(env, funded_trader, kind, is_long, collateral, SIZE // 2, trigger=trigger)

    # one wei short of the trigger (no spread: fill price == pushed price)
    land(env, env.eth, trigger + 1 if below else trigger - 1)
    assert status(env, oid) == (PENDING, TRIGGER_NOT_MET)
    assert tuple(execute(env, [oid], receiver).return_value) == (0, 0) and exists(env, oid)

    # beyond the trigger: fills at the oracle price, not at the trigger
    beyond = moved(trigger, -50 if below else 50)
    land(env, env.eth, beyond)
    tx = execute(env, [oid], receiver)
    assert tuple(tx.return_value) == (1, 0)
    assert tx.decode_logs(env.orders.OrderExecuted)[0].price == beyond != trigger
    update = tx.decode_logs(env.perp.PositionUpdate)[0]
    assert update.price == beyond


@pytest.mark.parametrize("kind, is_long", TRIGGER_CASES, ids=TRIGGER_IDS)
def test_execute__trigger_exactly_met__fills(env, funded_trader, receiver, kind, is_long):
    pin(env)
    if kind != LIMIT_INCREASE:
        open_position(env, funded_trader, env.eth, is_long, env.usd(2_000), SIZE)
    trigger = moved(SEED, -100 if waits_below(kind, is_long) else 100)
    collateral = env.usd(1_000) if kind == LIMIT_INCREASE else 0
    oid, _ = place(env, funded_trader, kind, is_long, collateral, SIZE // 2, trigger=trigger)
    land(env, env.eth, trigger)
    assert tuple(execute(env, [oid], receiver).return_value) == (1, 0)


def test_execute__trigger_order_price_not_acceptable__stays_pending(env, funded_trader, receiver):
    trigger = moved(SEED, -100)
    oid, _ = place(env, funded_trader, LIMIT_INCREASE, True, env.usd(1_000), SIZE, acceptable=moved(SEED, -300), trigger=trigger)
    land(env, env.eth, moved(SEED, -150))  # trigger met, but above the acceptable price
    assert status(env, oid) == (PENDING, PRICE_NOT_ACCEPTABLE)
    assert tuple(execute(env, [oid], receiver).return_value) == (0, 0) and exists(env, oid)


# ---------------------------------------------------------------- update: the clock restarts


def test_update__resets_the_clock_a_price_between_placement_and_update_is_not_used(env, funded_trader, receiver):
    pin(env)
    trigger = moved(SEED, -100)
    oid, _ = place(env, funded_trader, LIMIT_INCREASE, True, env.usd(1_000), SIZE, trigger=trigger)
    land(env, env.eth, moved(SEED, -50))  # newer than the order, trigger not met
    # the owner now knows this price and moves the trigger so that it holds: refused as met
    with ape.reverts("orders: trigger already met"):
        env.orders.update_order(oid, SIZE, MAX_UINT, moved(SEED, -40), sender=funded_trader)
    # a new trigger still unmet: the clock restarts at the update
    tx = env.orders.update_order(oid, SIZE * 2, MAX_UINT, moved(SEED, -60), sender=funded_trader)
    o = env.orders.get_order(oid)
    assert (o.size_delta, o.trigger_price, o.placed_at) == (SIZE * 2, moved(SEED, -60), tx.timestamp)
    assert o.price_floor == max(tx.timestamp, env.oracle.price_timestamp(env.eth))
    log = tx.decode_logs(env.orders.OrderUpdated)[0]
    assert (log.order_id, log.size_delta, log.placed_at) == (oid, SIZE * 2, tx.timestamp)
    land(env, env.eth, moved(SEED, -70))
    assert tuple(execute(env, [oid], receiver).return_value) == (1, 0)
    assert env.perp.get_position(funded_trader, env.eth, True).size_usd == SIZE * 2


def test_update__market_order_or_not_owner__refused(env, funded_trader, attacker):
    pin(env)
    market_id, _ = place(env, funded_trader, MARKET_INCREASE, True, env.usd(1_000), SIZE)
    limit_id, _ = place(env, funded_trader, LIMIT_INCREASE, True, env.usd(1_000), SIZE, trigger=moved(SEED, -100))
    ids = [market_id, limit_id]
    refused(env, (funded_trader,), ids, "orders: market order", env.orders.update_order,
            market_id, SIZE, MAX_UINT, 0, sender=funded_trader)
    refused(env, (funded_trader, attacker), ids, "orders: not owner", env.orders.update_order,
            limit_id, SIZE, MAX_UINT, moved(SEED, -200), sender=attacker)
    refused(env, (funded_trader,), ids, "orders: size too large", env.orders.update_order,
            limit_id, 2**128, MAX_UINT, moved(SEED, -200), sender=funded_trader)


# ---------------------------------------------------------------- keepers, timeout and self-execution


def test_execute__not_a_keeper_before_timeout__pending_after_timeout__anyone_fills(env, funded_trader, attacker, receiver):
    t = pin(env)
    oid, _ = place(env, funded_trader, MARKET_INCREASE, True, env.usd(1_000), SIZE)
    land(env, env.eth, SEED)
    assert status(env, oid, as_keeper=False) == (PENDING, TOO_EARLY)
    assert tuple(execute(env, [oid], attacker, sender=attacker).return_value) == (0, 0)
    with ape.reverts("orders: too early"):
        env.orders.execute_order(oid, attacker, sender=attacker)

    # the keeper is down: after the timeout anyone (here the owner) fills at the fresh price
    timeout = env.orders.timeout()
    pin(env, t + timeout)
    env.oracle.set_prices([env.eth], [moved(SEED, 20)], t + timeout, sender=env.keeper)
    tx = env.orders.execute_order(oid, funded_trader, sender=funded_trader)
    assert tx.decode_logs(env.orders.OrderExecuted)[0].price == moved(SEED, 20)
    assert env.vault.claimable(funded_trader) == FEE  # the owner executed: its fee back
    assert env.perp.get_position(funded_trader, env.eth, True).size_usd == SIZE


def test_execute_order__pending_reason_is_the_revert(env, funded_trader, receiver):
    oid, _ = place(env, funded_trader, MARKET_INCREASE, True, env.usd(1_000), SIZE)
    with ape.reverts("orders: price not newer than order"):
        env.orders.execute_order(oid, receiver, sender=env.keeper)
    with ape.reverts("orders: no order"):
        env.orders.execute_order(10**9, receiver, sender=env.keeper)
    with ape.reverts("orders: zero receiver"):
        env.orders.execute_order(oid, "0x0000000000000000000000000000000000000000", sender=env.keeper)


# ---------------------------------------------------------------- cancel


def test_cancel__market_order_by_owner_before_timeout__refused_then_everything_back(env, funded_trader):
    t = pin(env)
    collateral = env.usd(1_000)
    balance = env.token.balanceOf(funded_trader)
    oid, _ = place(env, funded_trader, MARKET_INCREASE, True, collateral, SIZE)
    pin(env, t + env.orders.timeout() - 1)
    refused(env, (funded_trader,), [oid], "orders: too early to cancel", env.orders.cancel_order, oid, sender=funded_trader)
    pin(env, t + env.orders.timeout())
    tx = env.orders.cancel_order(oid, sender=funded_trader)
    assert env.token.balanceOf(funded_trader) == balance
    log = tx.decode_logs(env.orders.OrderCancelled)[0]
    assert (log.reason_code, log.refund, log.fee_paid) == (BY_OWNER, collateral + FEE, 0)
    assert not exists(env, oid)


def test_cancel__trigger_order_by_owner__at_once(env, funded_trader, attacker):
    balance = env.token.balanceOf(funded_trader)
    oid, _ = place(env, funded_trader, LIMIT_INCREASE, False, env.usd(500), SIZE, trigger=moved(SEED, 100))
    refused(env, (funded_trader, attacker), [oid], "orders: not owner", env.orders.cancel_order, oid, sender=attacker)
    env.orders.cancel_order(oid, sender=funded_trader)
    assert env.token.balanceOf(funded_trader) == balance
    with ape.reverts("orders: no order"):
        env.orders.cancel_order(oid, sender=funded_trader)


def test_expiry__market_order__cannot_fill_anyone_cancels_owner_gets_everything(env, funded_trader, attacker, receiver):
    t = pin(env)
    collateral = env.usd(1_000)
    oid, _ = place(env, funded_trader, MARKET_INCREASE, True, collateral, SIZE)
    expiry = env.orders.expiry()
    pin(env, t + expiry - 1)
    env.oracle.set_prices([env.eth], [SEED], t + expiry - 1, sender=env.keeper)
    pin(env, t + expiry - 1)
    assert status(env, oid) == (EXECUTED, 0)  # the last second it could fill
    refused(env, (funded_trader, attacker), [oid], "orders: not owner", env.orders.cancel_order, oid, sender=attacker)
    pin(env, t + expiry - 1)
    pin(env, t + expiry)
    env.oracle.set_prices([env.eth], [SEED], t + expiry, sender=env.keeper)
    pin(env, t + expiry)
    assert status(env, oid) == (CANCELLED, EXPIRED)

    tx = execute(env, [oid], receiver)

    assert tuple(tx.return_value) == (0, 1)
    log = tx.decode_logs(env.orders.OrderCancelled)[0]
    assert (log.reason_code, log.reason, log.refund, log.fee_paid) == (EXPIRED, "orders: expired", collateral + FEE, 0)
    assert log.fee_receiver == "0x0000000000000000000000000000000000000000"
    assert env.vault.claimable(funded_trader) == collateral + FEE
    assert env.vault.claimable(receiver) == 0


def test_expiry__anyone_may_cancel_an_expired_order(env, funded_trader, attacker):
    t = pin(env)
    oid, _ = place(env, funded_trader, MARKET_DECREASE, True, 0, SIZE)
    pin(env, t + env.orders.expiry())
    env.orders.cancel_order(oid, sender=attacker)
    assert env.vault.claimable(funded_trader) == FEE and not exists(env, oid)


# ---------------------------------------------------------------- batches


def test_batch__refused_and_waiting_orders__the_rest_fill_nothing_reverts(env, funded_trader, counterparty, receiver, cfg):
    """One batch: a fill, a fill Perp refuses (leverage), an unknown id, a trigger not met, a
    decrease with no position, and another fill. Each is decided on its own."""
    pin(env)
    good_1, _ = place(env, funded_trader, MARKET_INCREASE, True, env.usd(1_000), SIZE)
    too_levered, _ = place(env, counterparty, MARKET_INCREASE, False, env.usd(50), 10_000 * WAD)
    waiting, _ = place(env, counterparty, LIMIT_INCREASE, True, env.usd(500), SIZE, trigger=moved(SEED, -500))
    no_position, _ = place(env, counterparty, MARKET_DECREASE, True, 0, SIZE)
    good_2, _ = place(env, counterparty, MARKET_INCREASE, True, env.usd(1_000), SIZE)
    land(env, env.eth, SEED)
    claim_before = env.vault.claimable(counterparty)

    tx = execute(env, [good_1, too_levered, 10**9, waiting, no_position, good_2], receiver)

    assert tuple(tx.return_value) == (2, 2)
    cancelled = {log.order_id: log for log in tx.decode_logs(env.orders.OrderCancelled)}
    assert (cancelled[too_levered].reason_code, cancelled[too_levered].reason) == (15, "perp: leverage too high")
    assert (cancelled[no_position].reason_code, cancelled[no_position].reason) == (9, "perp: no position")
    assert cancelled[too_levered].refund == env.usd(50) and cancelled[no_position].refund == 0
    assert exists(env, waiting) and not exists(env, too_levered)
    assert env.vault.claimable(counterparty) == claim_before + env.usd(50)
    assert env.vault.claimable(receiver) == 4 * FEE  # two fills, two rejections
    assert env.perp.get_position(funded_trader, env.eth, True).size_usd == SIZE
    assert env.perp.get_position(counterparty, env.eth, True).size_usd == SIZE
    assert env.perp.get_position(counterparty, env.eth, False).size_usd == 0
    assert env.vault.is_solvent()


def test_batch__every_perp_refusal_reason_is_the_direct_calls_reason(env, funded_trader):
    """The order book's reason table restates Perp's refusal codes (1-16) word for word."""
    perp_reasons = [
        "perp: unknown market", "perp: nothing to do", "perp: paused", "perp: market closing",
        "perp: zero size", "perp: zero collateral", "perp: price not acceptable",
        "perp: fees exceed collateral", "perp: no position", "perp: insufficient collateral",
        "perp: max open interest", "perp: reserve exceeded", "perp: position too small",
        "perp: collateral below min", "perp: leverage too high", "perp: would be liquidatable",
    ]
    assert [env.orders.reason(code) for code in range(1, 17)] == perp_reasons
    source = open("contracts/Perp.vy").read()
    codes = {name: int(n) for name, n in re.findall(r"^(REFUSED_\w+): constant\(uint256\) = (\d+)", source, re.M)}
    body = source[source.index("def _reason(") : source.index("def _fail(")]
    table = dict(re.findall(r'if code == (REFUSED_\w+):\n\s+return "([^"]+)"', body))
    last = re.findall(r'\n    return "([^"]+)"', body)[-1]
    named = {codes[name]: reason for name, reason in table.items()}
    named[max(codes.values())] = last
    assert [named[code] for code in range(1, 17)] == perp_reasons


def test_trade_for__only_the_order_book(env, funded_trader, attacker):
    with ape.reverts("perp: not order book"):
        env.perp.trade_for(funded_trader, env.eth, True, True, env.usd(100), SIZE, MAX_UINT, sender=attacker)


# ---------------------------------------------------------------- push and execute


def test_push_and_execute__one_keeper_transaction_pushes_and_fills(env, funded_trader, receiver):
    pin(env)
    oid, _ = place(env, funded_trader, MARKET_INCREASE, True, env.usd(1_000), SIZE)
    t = env.chain.blocks.head.timestamp + 1
    pin(env, t)
    price = moved(SEED, 30)

    tx = env.orders.execute_orders_with_prices([env.eth], [price], t, [oid], receiver, sender=env.keeper)

    assert tuple(tx.return_value) == (1, 0)
    assert env.oracle.price_timestamp(env.eth) == t
    assert tx.decode_logs(env.oracle.PriceUpdate)[0].price == price
    assert tx.decode_logs(env.orders.OrderExecuted)[0].price == price


def test_push_and_execute__not_a_keeper__refused(env, funded_trader, attacker, receiver):
    oid, _ = place(env, funded_trader, MARKET_INCREASE, True, env.usd(1_000), SIZE)
    t = env.chain.blocks.head.timestamp + 1
    refused(env, (funded_trader, attacker), [oid], "orders: not keeper",
            env.orders.execute_orders_with_prices, [env.eth], [SEED], t, [oid], attacker, sender=attacker)


def test_push_and_execute__bad_price__the_oracles_reason_and_nothing_fills(env, funded_trader, receiver):
    oid, _ = place(env, funded_trader, MARKET_INCREASE, True, env.usd(1_000), SIZE)
    t = env.chain.blocks.head.timestamp + 1
    refused(env, (funded_trader, receiver), [oid], "oracle: price jump",
            env.orders.execute_orders_with_prices, [env.eth], [SEED * 2], t, [oid], receiver, sender=env.keeper)


# ---------------------------------------------------------------- admin


def test_settings__bounded_and_admin_only(env, deployer, attacker):
    with ape.reverts("orders: not admin"):
        env.orders.set_settings(FEE, 60, 600, sender=attacker)
    with ape.reverts("orders: bad timeout"):
        env.orders.set_settings(FEE, 9, 600, sender=deployer)
    with ape.reverts("orders: bad timeout"):
        env.orders.set_settings(FEE, 3_601, 7_200, sender=deployer)
    with ape.reverts("orders: bad expiry"):
        env.orders.set_settings(FEE, 60, 60, sender=deployer)
    with ape.reverts("orders: bad expiry"):
        env.orders.set_settings(FEE, 60, 86_401, sender=deployer)
    with ape.reverts("orders: min fee too large"):
        env.orders.set_settings(100 * env.unit + 1, 60, 600, sender=deployer)
    tx = env.orders.set_settings(100 * env.unit, 60, 600, sender=deployer)
    assert (env.orders.min_execution_fee(), env.orders.timeout(), env.orders.expiry()) == (100 * env.unit, 60, 600)
    assert tx.decode_logs(env.orders.SettingsSet)[0].timeout == 60


def test_keepers_and_admin_transfer(env, deployer, attacker):
    with ape.reverts("orders: not admin"):
        env.orders.set_keeper(attacker, True, sender=attacker)
    env.orders.set_keeper(attacker, True, sender=deployer)
    assert env.orders.keepers(attacker)
    env.orders.transfer_admin(attacker, sender=deployer)
    with ape.reverts("orders: not pending admin"):
        env.orders.accept_admin(sender=deployer)
    env.orders.accept_admin(sender=attacker)
    assert env.orders.admin() == attacker.address
