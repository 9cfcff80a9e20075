"""The catalogue's yardstick: what "nothing was lost" means, read from the chain.

`snapshot(env, accounts)` records everything an attack could take or corrupt: the Vault's
token balance and recorded buckets, the LP share supply and price (both roundings), the
pool value, open interest and reserve, bad debt, keeper credits, and each named account's
positions, tokens, LP shares and claimable credit. `assert_unchanged(before, after)`
compares two snapshots key by key; `changed(before, after)` lists what moved, so a test
can assert that only the documented items did (and by how much).
"""

from __future__ import annotations

from typing import Any, Iterable

import ape
import requests
from eth_utils import to_hex

SIDES = (True, False)


def _read_batch(env: Any, calls: list[tuple[Any, str, tuple]]) -> list[Any]:
    """Many views in one JSON-RPC batch at the head block: each a uint256 as an int, any
    other answer as its raw return data (compared, never decoded), a revert as the string
    "reverts: <message>" (a stale price makes the pool value unreadable)."""
    payload = [
        {
            "jsonrpc": "2.0",
            "id": i,
            "method": "eth_call",
            "params": [{"to": str(c.address), "data": to_hex(getattr(c, name).encode_input(*args))}, "latest"],
        }
        for i, (c, name, args) in enumerate(calls)
    ]
    answers = sorted(requests.post(env.chain.provider.uri, json=payload, timeout=60).json(), key=lambda a: a["id"])
    out: list[Any] = []
    for answer in answers:
        if "error" in answer:
            out.append(f"reverts: {answer['error'].get('message')}")
        elif len(answer["result"]) == 66:  # one word
            out.append(int(answer["result"], 16))
        else:
            out.append(answer["result"])
    return out


def snapshot(env: Any, accounts: Iterable[Any] = ()) -> dict[str, Any]:
    vault, perp, token = env.vault, env.perp, env.token
    accounts = list(accounts)
    markets = list(env.markets.values())
    scalars = {
        "vault_balance": (token, "balanceOf", (vault.address,)),
        "total_owed": (vault, "total_owed", ()),
        "pool_amount": (vault, "pool_amount", ()),
        "collateral_amount": (vault, "collateral_amount", ()),
        "escrow_amount": (vault, "escrow_amount", ()),
        "insurance_amount": (vault, "insurance_amount", ()),
        "claimable_amount": (vault, "claimable_amount", ()),
        "reserved_amount": (vault, "reserved_amount", ()),
        "lp_supply": (vault, "totalSupply", ()),
        "pool_value_max": (perp, "pool_value", (True,)),
        "pool_value_min": (perp, "pool_value", (False,)),
        "share_price_max": (vault, "share_price", (True,)),
        "share_price_min": (vault, "share_price", (False,)),
        "bad_debt_total": (perp, "bad_debt_total", ()),
    }
    groups = {
        "open_interest": {(m, s): (perp, "open_interest", (m, s)) for m in markets for s in SIDES},
        "positions": {
            (str(a), m, s): (perp, "get_position", (a.address, m, s)) for a in accounts for m in markets for s in SIDES
        },
        "tokens": {str(a): (token, "balanceOf", (a.address,)) for a in accounts},
        "lp_shares": {str(a): (vault, "balanceOf", (a.address,)) for a in accounts},
        "claimable": {str(a): (vault, "claimable", (a.address,)) for a in accounts},
    }
    calls = list(scalars.values()) + [c for g in groups.values() for c in g.values()]
    values = iter(_read_batch(env, calls))
    snap: dict[str, Any] = {key: next(values) for key in scalars}
    for name, group in groups.items():
        snap[name] = {key: next(values) for key in group}
    snap["pool_value"] = (snap.pop("pool_value_max"), snap.pop("pool_value_min"))
    snap["share_price"] = (snap.pop("share_price_max"), snap.pop("share_price_min"))
    return snap


def changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{key: (before, after)} for every top-level item that differs (nested dicts by item)."""
    out: dict[str, tuple[Any, Any]] = {}
    for key, old in before.items():
        new = after[key]
        if isinstance(old, dict):
            for k in old:
                if old[k] != new[k]:
                    out[f"{key}[{k}]"] = (old[k], new[k])
        elif old != new:
            out[key] = (old, new)
    return out


def assert_unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    diff = changed(before, after)
    assert not diff, f"state moved: {diff}"


def assert_solvent(env: Any) -> None:
    """The Vault holds at least everything it owes (exactly, absent donations)."""
    assert env.vault.is_solvent()
    assert env.token.balanceOf(env.vault) >= env.vault.total_owed()


def hold_time(env: Any) -> int:
    """Mine up to the pinned next-block time (if ahead of the head) and keep the clock
    there: views read at the head's time, so pool value and share price (which accrue
    fees by the second) compare like for like before and after a call mined at it."""
    chain = env.chain
    t = max(chain.pending_timestamp, chain.blocks.head.timestamp)
    if chain.blocks.head.timestamp < t:
        chain.mine(1, timestamp=t)
    chain.pending_timestamp = t
    return t


def refused(env: Any, accounts: Iterable[Any], reason: str, call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """`call` (at the pinned time) reverts with exactly `reason`, and nothing in the
    snapshot moved."""
    accounts = list(accounts)
    t = hold_time(env)
    before = snapshot(env, accounts)
    env.chain.pending_timestamp = t
    with ape.reverts(reason):
        call(*args, **kwargs)
    after = snapshot(env, accounts)
    assert_unchanged(before, after)
    assert_solvent(env)
    return after


def wealth(env: Any, account: Any) -> int:
    """Token units an account holds or may claim (its LP shares and positions excluded)."""
    return env.token.balanceOf(account) + env.vault.claimable(account)


# ---------------------------------------------------------------- the Vault's formulas
# (Vault.vy deposit / redeem; the pool value is Perp's `pool_value(maximize)`)

BPS = 10_000
DEAD_SHARES = 10**15


def ceil_div(x: int, d: int) -> int:
    return -(-x // d)


def quote_deposit(env: Any, amount: int) -> tuple[int, int]:
    """(shares minted, mint fee) for `amount` token units, by a deposit sent next: shares
    round down, the fee up. Holds the clock (`hold_time`), so the view and the deposit
    see the same second of accrued fees."""
    hold_time(env)
    vault = env.vault
    fee = ceil_div(amount * vault.mint_fee_bps(), BPS)
    net = (amount - fee) * env.scale
    supply = vault.totalSupply()
    if supply == 0:
        return net - DEAD_SHARES, fee
    return net * supply // env.perp.pool_value(True), fee


def quote_redeem(env: Any, shares: int) -> tuple[int, int]:
    """(token units paid, burn fee) for `shares`, by a redeem sent next: the amount rounds
    down, the fee up. Holds the clock like `quote_deposit`."""
    hold_time(env)
    vault = env.vault
    gross = shares * env.perp.pool_value(False) // vault.totalSupply() // env.scale
    fee = ceil_div(gross * vault.burn_fee_bps(), BPS)
    return gross - fee, fee


class Finding(AssertionError):
    """An attack that works: raised by a catalogue test marked xfail(strict, raises=Finding),
    so any other assertion of that test still fails it for real."""


# ---------------------------------------------------------------- aggregates


def book(env: Any, holders: Iterable[Any], market: int) -> dict[bool, list[tuple[Any, Any]]]:
    """{is_long: [(holder, position)]} of the holders' open positions in `market`."""
    out: dict[bool, list[tuple[Any, Any]]] = {True: [], False: []}
    for h in holders:
        for side in SIDES:
            pos = env.perp.get_position(h, market, side)
            if pos.size_usd:
                out[side].append((h, pos))
    return out


def assert_aggregates(env: Any, holders: Iterable[Any]) -> None:
    """Open interest (USD and tokens) equals the sum over positions, per market side, and
    Perp's pool value equals the one recomputed position by position (each position's
    PnL, pending borrowing and funding by Perp's own health view) up to the aggregates'
    per-position rounding (a few wei per position)."""
    holders = list(holders)
    perp = env.perp
    pool = env.vault.pool_amount() * env.scale
    for maximize in (True, False):
        assets, pnl, n = pool, 0, 0
        for m in env.markets.values():
            positions = book(env, holders, m)
            for side in SIDES:
                assert tuple(perp.open_interest(m, side)) == (
                    sum(p.size_usd for _, p in positions[side]),
                    sum(p.size_tokens for _, p in positions[side]),
                ), "open interest differs from the sum over positions"
                if not positions[side]:
                    continue
                price = env.oracle.get_price(m, side != maximize)
                for h, _ in positions[side]:
                    v = perp.position_values(h, m, side, price)
                    assets += v.borrowing_fee
                    pnl += v.pnl + v.funding
                    n += 1
        cap = pool * perp.max_pnl_factor_bps() // BPS
        expected = max(assets - min(pnl, cap), 0)
        assert abs(perp.pool_value(maximize) - expected) <= 6 * n + 2, (perp.pool_value(maximize), expected)
