"""Scene-setting helpers for the order keeper's chain tests (test_orders_e2e.py): traders
place orders through Ape; the keeper under test reads and sends through its own web3
client. Not a test module."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from keepers.chain import Chain
from keepers.decide.orders import (
    LIMIT_INCREASE,
    MARKET_DECREASE,
    MARKET_INCREASE,
    STOP_LOSS,
    TAKE_PROFIT,
    buys,
)
from keepers.decide.prices import Quote
from perpool import params

from liquidator_scene import MAX_UINT, UNIT, WAD

FEE = params.MIN_EXECUTION_FEE  # token units ($0.10)

__all__ = [
    "FEE", "LIMIT_INCREASE", "MARKET_DECREASE", "MARKET_INCREASE", "STOP_LOSS", "TAKE_PROFIT", "UNIT", "WAD",
    "ScriptedSource", "executed_events", "cancelled_events", "place", "price_updates",
]


def place(protocol: Any, trader: Any, market: int, kind: int, is_long: bool, collateral_usd: int, size_usd: int,
          trigger: int = 0, acceptable: int | None = None, fee: int = FEE) -> int:
    """Create an order (acceptable price: any, unless given); returns its id."""
    if acceptable is None:
        acceptable = MAX_UINT if buys(kind, is_long) else 0
    tx = protocol.orders.create_order(market, kind, is_long, collateral_usd * UNIT, size_usd * WAD, acceptable,
                                      trigger, fee, sender=trader)
    return int(tx.return_value)


@dataclass
class ScriptedSource:
    """A price source whose prices the test sets (market name -> WAD), observed at the
    chain's clock (`clock`, given by the pusher it serves)."""

    prices: dict[str, int]
    clock: Callable[[], int] = lambda: 0
    reads: int = field(default=0)

    def markets(self) -> list[str]:
        return sorted(self.prices)

    def read(self) -> dict[str, Quote]:
        self.reads += 1
        now = int(self.clock())
        return {m: Quote(p, now) for m, p in self.prices.items()}


def _logs(client: Chain, event: Any, from_block: int) -> list[Any]:
    return client.logs(event, from_block, client.head())


def executed_events(client: Chain, from_block: int) -> dict[int, Any]:
    return {int(e["args"]["order_id"]): e for e in _logs(client, client.order_book.events.OrderExecuted, from_block)}


def cancelled_events(client: Chain, from_block: int) -> dict[int, Any]:
    return {int(e["args"]["order_id"]): e for e in _logs(client, client.order_book.events.OrderCancelled, from_block)}


def price_updates(client: Chain, from_block: int) -> list[Any]:
    return _logs(client, client.oracle.events.PriceUpdate, from_block)
