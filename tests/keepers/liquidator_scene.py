"""Scene-setting helpers for the liquidator's chain tests (test_positions.py and
test_liquidator_e2e.py): Ape pushes prices and trades; the keepers under test only read the
chain through their own web3 client. Not a test module."""

from __future__ import annotations

from typing import Any

from keepers.decide.liquidation import PositionKey
from perpool.prices import push_stepped

WAD = 10**18
MAX_UINT = 2**256 - 1
UNIT = 10**6  # token units per dollar (the 6-decimal test token)


def push(protocol: Any, chain: Any, updater: Any, prices: dict[int, int]) -> int:
    """Push `prices` (market -> WAD) observed in the next block, whose timestamp is pinned
    just after both the head and the newest stored observation (the Oracle refuses a
    timestamp that is not newer). Returns that timestamp."""
    stored = max(protocol.oracle.price_timestamp(m) for m in prices)
    ts = max(chain.pending_timestamp, chain.blocks.head.timestamp + 1, stored + 1)
    # a move beyond the Oracle's jump bound is stepped through it, ending at `ts` (or later)
    return push_stepped(protocol.oracle, chain, updater, prices, at=ts)


def open_position(protocol: Any, trader: Any, market: int, is_long: bool, collateral_usd: int,
                  leverage: int) -> PositionKey:
    """Open (or grow) a position of collateral_usd x leverage at the oracle price."""
    size = collateral_usd * leverage * WAD
    acceptable = MAX_UINT if is_long else 0
    protocol.perp.increase_position(market, is_long, collateral_usd * UNIT, size, acceptable, sender=trader)
    return (str(trader.address), market, is_long)


def decrease(protocol: Any, trader: Any, market: int, is_long: bool, size_delta: int,
             collateral_delta: int = 0) -> None:
    acceptable = 0 if is_long else MAX_UINT
    protocol.perp.decrease_position(market, is_long, collateral_delta, size_delta, acceptable, trader,
                                    sender=trader)


def onchain(protocol: Any, key: PositionKey) -> tuple[int, int, int, int, int]:
    """Perp.get_position as a plain tuple."""
    p = protocol.perp.get_position(*key)
    return (int(p.size_usd), int(p.size_tokens), int(p.collateral), int(p.borrow_index), int(p.funding_index))


def assert_book_matches(book: Any, protocol: Any, keys: list[PositionKey]) -> None:
    """The book holds exactly the open positions among `keys` (every position the scene
    touched), each as Perp stores it."""
    expected = {}
    for key in keys:
        state = onchain(protocol, key)
        if state[0] != 0:
            expected[key] = state
    got = {
        key: (r.size_usd, r.size_tokens, r.collateral, r.borrow_index, r.funding_index)
        for key, r in book.positions.items()
    }
    assert got == expected
