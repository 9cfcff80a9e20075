"""Which orders the order keeper sends, and how: pure functions over integers.

The chain decides every order (`OrderBook.order_status` says what `execute_orders` would
do with it now, and the batch itself fills, cancels or skips each); this module only sorts
the answers into work, packs the work into batches, and handles the failures:

- `triage`: orders the chain would fill or cancel now (`ready`), orders that wait only
  for a price this keeper could push (`need_price`), and the rest (trigger not met at the
  stored price, too early, gone);
- `decided_by_push`: whether pushing a price would let the batch decide an order: the
  observation must be newer than the order's price floor, and a trigger order's trigger
  and acceptable price must hold at it (a market order is decided by any newer price:
  filled, or cancelled when its acceptable price is not met); an LP order (deposit or
  redeem) prices the whole pool, so only a push of every market decides it
  (`markets_of`);
- `plan_batches`: at most `MAX_BATCH` (64) orders per transaction, the push first;
- `isolate`: a batch whose call reverts is bisected until every part passes or is a single
  order that fails alone, which is parked with an exponential backoff (`backoff_s`), so
  one poisoned order never blocks the others.

Kinds, outcomes, reason codes and the trigger rule restate contracts/OrderBook.vy. Prices
are WAD USD, times unix seconds (`price_floor`) or the keeper's monotonic clock (parking).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

MAX_BATCH = 64  # OrderBook.execute_orders takes at most this many ids

# order kinds
MARKET_INCREASE, LIMIT_INCREASE, MARKET_DECREASE, TAKE_PROFIT, STOP_LOSS, LP_DEPOSIT, LP_REDEEM = range(7)
KIND_NAMES = (
    "market_increase", "limit_increase", "market_decrease", "take_profit", "stop_loss",
    "lp_deposit", "lp_redeem",
)

# what `order_status` (and a batch) does with an order
PENDING, EXECUTED, CANCELLED = range(3)
OUTCOME_NAMES = ("pending", "executed", "cancelled")

# reason codes: 1-16 are Perp's refusals, 32-47 the order book's, 48 and up the Vault's
NOT_FOUND = 32
TOO_EARLY = 33  # not a keeper, and the order's timeout has not passed
EXPIRED = 34
PRICE_STALE = 35
PRICE_NOT_NEWER = 36
TRIGGER_NOT_MET = 37
PRICE_NOT_ACCEPTABLE = 38
MARKET_SETTLED = 39
BY_OWNER = 40
VAULT_PAUSED = 48  # an LP deposit order waits out a Vault pause

#: pending reasons a fresh push can end (whether it does is `decided_by_push`'s question)
PRICE_WAITS = frozenset({PRICE_STALE, PRICE_NOT_NEWER, TRIGGER_NOT_MET, PRICE_NOT_ACCEPTABLE})
#: short names of the order book's codes for logs and metrics (`OrderBook.reason` has the words)
REASON_NAMES = {
    NOT_FOUND: "not_found",
    TOO_EARLY: "too_early",
    EXPIRED: "expired",
    PRICE_STALE: "price_stale",
    PRICE_NOT_NEWER: "price_not_newer",
    TRIGGER_NOT_MET: "trigger_not_met",
    PRICE_NOT_ACCEPTABLE: "price_not_acceptable",
    MARKET_SETTLED: "market_settled",
    BY_OWNER: "by_owner",
    VAULT_PAUSED: "vault_paused",
    49: "vault_first_deposit_too_small",
    50: "vault_pool_value_zero",
    51: "vault_zero_shares",
    52: "vault_slippage",
    53: "vault_deposit_would_dilute",
    54: "vault_zero_amount",
    55: "vault_reserved",
    56: "vault_redeem_beyond_its_share",
}


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Order:
    """What the keeper knows of a pending order from its events."""

    order_id: int
    market: int  # 0 for LP orders
    kind: int  # MARKET_INCREASE .. LP_REDEEM
    is_long: bool
    acceptable_price: int  # WAD, the worst fill accepted
    trigger_price: int  # WAD; 0 for market orders
    price_floor: int  # s: it fills only at a price observed strictly after this


@dataclass(frozen=True)
class Status:
    """`OrderBook.order_status(id, as_keeper)`."""

    outcome: int  # PENDING, EXECUTED (would try to fill) or CANCELLED (would cancel)
    code: int  # the reason (0 for a fill)


def is_lp(kind: int) -> bool:
    return kind >= LP_DEPOSIT


def is_market_order(kind: int) -> bool:
    """Filled at the next price or not at all (LP orders too)."""
    return kind in (MARKET_INCREASE, MARKET_DECREASE) or is_lp(kind)


def markets_of(order: Order, every_market: Iterable[int]) -> frozenset[int]:
    """The markets whose newer price the order needs: its own, or for an LP order every
    market (the pool value reads them all)."""
    return frozenset(every_market) if is_lp(order.kind) else frozenset((order.market,))


def is_increase(kind: int) -> bool:
    return kind <= LIMIT_INCREASE


def buys(kind: int, is_long: bool) -> bool:
    """Opening a long or closing a short: the fill uses the Oracle's max price (else the
    min) and accepts up to `acceptable_price` (else down to it)."""
    return is_increase(kind) == is_long


def trigger_holds(kind: int, is_long: bool, price: int, trigger: int) -> bool:
    """OrderBook._trigger_holds: limit and stop-loss longs (take-profit shorts) wait for
    the price to fall to the trigger; the rest for it to rise to it."""
    if (kind == TAKE_PROFIT) != is_long:
        return price <= trigger
    return price >= trigger


def price_acceptable(kind: int, is_long: bool, price: int, acceptable: int) -> bool:
    return price <= acceptable if buys(kind, is_long) else price >= acceptable


def decided_by_push(order: Order, price: int, observed_at: int) -> bool:
    """Whether a push of `price` observed at `observed_at` lets a batch decide `order`
    (fill or cancel) rather than leave it pending. `price` stands for both the Oracle's min
    and max: a spread, when one is on, can still leave a trigger order pending (it then
    waits for the next price, no harm done)."""
    if observed_at <= order.price_floor:
        return False
    if is_market_order(order.kind):
        return True
    return trigger_holds(order.kind, order.is_long, price, order.trigger_price) and price_acceptable(
        order.kind, order.is_long, price, order.acceptable_price
    )


# ---------------------------------------------------------------- triage


@dataclass(frozen=True)
class Triage:
    ready: tuple[int, ...]  # the chain would fill or cancel them now
    need_price: tuple[int, ...]  # pending for a price reason (PRICE_WAITS)
    waiting: dict[int, int]  # reason code -> how many wait for anything else
    gone: tuple[int, ...]  # NOT_FOUND: filled or cancelled already


def triage(statuses: Mapping[int, Status]) -> Triage:
    """Sort the chain's answers, each group oldest order first."""
    ready: list[int] = []
    need_price: list[int] = []
    gone: list[int] = []
    waiting: dict[int, int] = {}
    for order_id in sorted(statuses):
        status = statuses[order_id]
        if status.outcome in (EXECUTED, CANCELLED):
            ready.append(order_id)
        elif status.code == NOT_FOUND:
            gone.append(order_id)
        elif status.code in PRICE_WAITS:
            need_price.append(order_id)
            waiting[status.code] = waiting.get(status.code, 0) + 1
        else:
            waiting[status.code] = waiting.get(status.code, 0) + 1
    return Triage(tuple(ready), tuple(need_price), waiting, tuple(gone))


def select_for_push(
    orders: Mapping[int, Order],
    ids: Iterable[int],
    prices: Mapping[int, int],
    observed_at: int,
    every_market: Iterable[int] = (),
) -> list[int]:
    """Of `ids` (orders waiting for a price), the ones a push of `prices` (market id ->
    WAD) observed at `observed_at` would decide, oldest first. An LP order needs every
    market of `every_market` in the push."""
    every = frozenset(every_market)
    out = []
    for order_id in sorted(ids):
        order = orders.get(order_id)
        if order is None:
            continue
        if is_lp(order.kind):
            if every and every <= prices.keys() and observed_at > order.price_floor:
                out.append(order_id)
            continue
        if order.market not in prices:
            continue
        if decided_by_push(order, prices[order.market], observed_at):
            out.append(order_id)
    return out


def available(
    ids: Iterable[int],
    in_flight: Mapping[int, float],
    parked: Mapping[int, "Parked"],
    now: float,
) -> list[int]:
    """`ids` less those in a transaction not yet settled (held until their time) and those
    parked until later, oldest first."""
    return sorted(
        i for i in ids
        if in_flight.get(i, float("-inf")) <= now and parked.get(i, Parked(0, float("-inf"), "")).until <= now
    )


# ---------------------------------------------------------------- batches


@dataclass(frozen=True)
class Batch:
    """One transaction: `execute_orders_with_prices` when `with_prices` (the push goes in
    with these ids), else `execute_orders`."""

    ids: tuple[int, ...]
    with_prices: bool = False


def plan_batches(
    pushed: Sequence[int],
    ready: Sequence[int],
    size: int = MAX_BATCH,
    max_batches: int | None = None,
) -> list[Batch]:
    """The transactions for one tick, oldest orders first. With orders to push for
    (`pushed`), the first batch carries the push, those orders, and ready ones in the room
    left; pushed orders beyond `size` follow in plain batches (the push has landed by
    then). Then the ready orders, `size` at a time. At most `max_batches` (the rest wait a
    tick: other keepers in the process get their turn)."""
    if not 0 < size <= MAX_BATCH:
        raise ValueError(f"batch size {size} is not in [1, {MAX_BATCH}]")
    pushed_ids = sorted(set(pushed))
    rest = sorted(set(ready) - set(pushed_ids))
    batches: list[Batch] = []
    if pushed_ids:
        first = pushed_ids[:size]
        room = size - len(first)
        batches.append(Batch(tuple(sorted(first + rest[:room])), True))
        rest = sorted(pushed_ids[size:] + rest[room:])
    for start in range(0, len(rest), size):
        batches.append(Batch(tuple(rest[start:start + size])))
    return batches if max_batches is None else batches[:max_batches]


# ---------------------------------------------------------------- failures


@dataclass(frozen=True)
class Isolation:
    """What bisecting a failing batch found: the parts whose call passes (in order) and the
    orders that fail alone."""

    good: tuple[tuple[int, ...], ...]
    bad: tuple[int, ...]
    probes: int  # calls made

    @property
    def merged(self) -> tuple[int, ...]:
        return tuple(i for part in self.good for i in part)


def isolate(ids: Sequence[int], probe: Callable[[Sequence[int]], bool]) -> Isolation:
    """Bisect `ids`, a batch whose call reverts (not probed again): each half is probed;
    a half that passes is kept whole, one that fails is split again, and a single order
    that fails is bad. `probe(part)` is True when a call with just `part` passes. With one
    bad order among n this costs about 2 log2(n) calls."""
    good: list[tuple[int, ...]] = []
    bad: list[int] = []
    probes = 0

    def walk(part: tuple[int, ...], known_bad: bool) -> None:
        nonlocal probes
        if not known_bad:
            probes += 1
            if probe(part):
                good.append(part)
                return
        if len(part) == 1:
            bad.append(part[0])
            return
        mid = len(part) // 2
        walk(part[:mid], False)
        walk(part[mid:], False)

    if ids:
        walk(tuple(ids), True)
    return Isolation(tuple(good), tuple(bad), probes)


@dataclass(frozen=True)
class Parked:
    """An order that failed alone: left out until `until` (monotonic seconds)."""

    failures: int  # consecutive times it failed alone
    until: float
    reason: str


def backoff_s(failures: int, base_s: float, max_s: float) -> float:
    """base, 2 base, 4 base, ... capped at `max_s`."""
    if failures <= 0:
        return 0.0
    return min(base_s * 2 ** min(failures - 1, 62), max_s)


def park(previous: Parked | None, now: float, reason: str, base_s: float, max_s: float) -> Parked:
    """The parking of an order that just failed alone (again)."""
    failures = (previous.failures if previous is not None else 0) + 1
    return Parked(failures, now + backoff_s(failures, base_s, max_s), reason)
