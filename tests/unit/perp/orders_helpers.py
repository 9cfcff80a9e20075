"""Helpers for the OrderBook suites: placing orders, reading their outcome, the escrow.

Kinds, outcomes and reason codes restate contracts/OrderBook.vy; the expected fills come
from the reference model in helpers.py at the oracle price the fill used.
"""

from __future__ import annotations

from typing import Any

from helpers import MAX_UINT, pin, push_fresh
from perpool import params

MARKET_INCREASE, LIMIT_INCREASE, MARKET_DECREASE, TAKE_PROFIT, STOP_LOSS = range(5)
KINDS = {
    "market_increase": MARKET_INCREASE,
    "limit_increase": LIMIT_INCREASE,
    "market_decrease": MARKET_DECREASE,
    "take_profit": TAKE_PROFIT,
    "stop_loss": STOP_LOSS,
}
PENDING, EXECUTED, CANCELLED = range(3)
NOT_FOUND, TOO_EARLY, EXPIRED, PRICE_STALE, PRICE_NOT_NEWER = 32, 33, 34, 35, 36
TRIGGER_NOT_MET, PRICE_NOT_ACCEPTABLE, MARKET_SETTLED, BY_OWNER = 37, 38, 39, 40
FEE = params.MIN_EXECUTION_FEE  # token units of the 6-decimal stablecoin


def is_increase(kind: int) -> bool:
    return kind <= LIMIT_INCREASE


def buys(kind: int, is_long: bool) -> bool:
    """Opening a long or closing a short: fills at the max price."""
    return is_increase(kind) == is_long


def any_price(kind: int, is_long: bool) -> int:
    """The acceptable price that accepts every fill."""
    return MAX_UINT if buys(kind, is_long) else 0


def place(
    env: Any,
    owner: Any,
    kind: int,
    is_long: bool,
    collateral: int,
    size: int,
    acceptable: int | None = None,
    trigger: int = 0,
    fee: int = FEE,
    market: int | None = None,
) -> tuple[int, Any]:
    """Create an order; (its id, the transaction)."""
    tx = env.orders.create_order(
        env.eth if market is None else market,
        kind,
        is_long,
        collateral,
        size,
        any_price(kind, is_long) if acceptable is None else acceptable,
        trigger,
        fee,
        sender=owner,
    )
    return tx.return_value, tx


def land(env: Any, market: int, price: int) -> int:
    """`push_fresh`, then keep the clock at that second, so the views read and the
    transactions sent next see the block time of the push (no fee accrues in between)."""
    t = push_fresh(env, market, price)
    pin(env, t)
    return t


def fill_price(env: Any, market: int, kind: int, is_long: bool) -> int:
    """The oracle price an order of this kind and side fills at now."""
    return env.oracle.get_price(market, buys(kind, is_long))


def execute(env: Any, ids: list[int], receiver: Any, sender: Any | None = None) -> Any:
    return env.orders.execute_orders(ids, receiver, sender=sender or env.keeper)


def status(env: Any, order_id: int, as_keeper: bool = True) -> tuple[int, int]:
    return tuple(env.orders.order_status(order_id, as_keeper))


def exists(env: Any, order_id: int) -> bool:
    return env.orders.get_order(order_id).owner != "0x0000000000000000000000000000000000000000"


def moved(price: int, bps: int) -> int:
    """`price` moved by `bps` (signed), an exact WAD."""
    return price * (10_000 + bps) // 10_000


def order_state(env: Any, ids: list[int], accounts: tuple[Any, ...]) -> dict[str, Any]:
    """Everything an order refusal must leave unchanged."""
    return {
        "orders": [tuple(env.orders.get_order(i)) for i in ids],
        "next": env.orders.next_order_id(),
        "escrow": env.vault.escrow_amount(),
        "claimable": [env.vault.claimable(a) for a in accounts],
        "balances": [env.token.balanceOf(a) for a in accounts] + [env.token.balanceOf(env.vault)],
        "positions": [
            tuple(env.perp.get_position(a, m, side))
            for a in accounts
            for m in env.markets.values()
            for side in (True, False)
        ],
    }

