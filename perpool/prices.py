"""Stepping a price move through the Oracle's jump bound, for devnet tools, scripts and tests
(the price keeper does the same in keepers/decide/prices.py, with its window and step cap).

One push may move a price at most `max_jump_bps` from the stored price (2 % by default: the
initial margin at the highest max leverage, see docs/oracle.md), so a larger move is pushed
as several observations one second apart, each the largest allowed step."""

from __future__ import annotations

from typing import Any

BPS = 10_000


def steps(old: int, target: int, max_jump_bps: int) -> list[int]:
    """The prices that take `old` to `target`, each within `max_jump_bps` of the one before
    (the bound floored, as the Oracle checks `|p - old| * 10_000 <= max_jump_bps * old`);
    `[target]` when one push is allowed (or nothing is stored yet)."""
    if old == 0 or abs(target - old) * BPS <= max_jump_bps * old:
        return [target]
    path, price = [], old
    while price != target:
        bound = price * max_jump_bps // BPS
        if bound == 0:
            raise ValueError(f"max_jump_bps {max_jump_bps} cannot move {price}")
        price = min(max(target, price - bound), price + bound)
        path.append(price)
    return path


def batches(stored: dict[int, int], prices: dict[int, int], max_jump_bps: int) -> list[tuple[list[int], list[int]]]:
    """The `set_prices` calls, one a second, that take every market from its `stored` price
    to its target in `prices` (market -> WAD), each stepped through the jump bound: a call
    per step of the longest path, every path ending in the last call (a market joins when
    its own steps begin). Each call is (markets, prices)."""
    paths = {m: steps(stored[m], p, max_jump_bps) for m, p in prices.items()}
    n = max(len(path) for path in paths.values())
    out = []
    for k in range(n):
        markets = [m for m, path in paths.items() if len(path) >= n - k]
        out.append((markets, [paths[m][k - (n - len(paths[m]))] for m in markets]))
    return out


def push_stepped(oracle: Any, chain: Any, updater: Any, prices: dict[int, int], at: int | None = None) -> int:
    """Push `prices` (market -> WAD) through Ape, each market stepped through the jump bound:
    observation k of n is pushed in its own block at `at - n + k` (default `at`: one second
    after the head and every stored observation, plus the steps needed), the last at `at`
    with every target. Returns the time of the last push; `chain.pending_timestamp` stays
    there (pinned) for the transactions that follow."""
    calls = batches({m: oracle.price_data(m).price for m in prices}, prices, oracle.config().max_jump_bps)
    n = len(calls)
    first = max([chain.blocks.head.timestamp] + [oracle.price_timestamp(m) for m in prices]) + 1
    t = max(first, (at if at is not None else first + n - 1) - n + 1)
    for k, (markets, values) in enumerate(calls):
        chain.pending_timestamp = t + k
        oracle.set_prices(markets, values, t + k, sender=updater)
    return t + n - 1
