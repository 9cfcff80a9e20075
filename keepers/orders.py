"""The order keeper: follows the OrderBook's pending orders (`PendingOrders`), and on every
tick asks the chain what `execute_orders` would do with each (`order_status`, in JSON-RPC
batches), then fills and cancels them in batches of at most 64, the fees credited to the
keeper's account in the Vault, which it claims now and then.

Decisions are `keepers.decide.orders`'s; this class only reads, sends and remembers:
- orders the chain would fill or cancel now go through `execute_orders`;
- with a price source (the pusher's: `perpool-keeper all`, or `orders_push_prices`) and
  the keeper role, orders that wait only for a price newer than themselves (or a trigger
  order whose trigger the fresh quote meets) get one: the pusher plans the push (its
  source checks and the Oracle's bounds, `PricePusher.plan_now`), and it goes in the same
  transaction as the orders (`execute_orders_with_prices`), so a market order fills at a
  price observed after it was placed without waiting for the next heartbeat;
- an order is sent at most once at a time: its id stays in flight from the send until the
  receipt (or, with no receipt in time, for `2 x receipt_timeout_s`), and the ones the
  batch decided stay out until the follower has applied that block;
- a batch is first called (`eth_call` on the pending block): one that would decide
  nothing is not sent; one whose call reverts is bisected (`isolate`) to find the orders
  that fail alone, which are parked (logged, retried after `order_retry_s`, doubling up to
  `order_retry_max_s`), and the rest are sent; a push the Oracle refuses is dropped and the
  ready orders go without it.

Metrics: `orders_pending` (gauge, the follower's), `orders_ready` and `orders_waiting`
(gauges, last tick), `orders_executed` / `orders_cancelled` (by our transactions),
`order_batches_sent`, `order_batches_failed`, `order_price_pushes`, `orders_parked`
(gauge) and `order_failures` (orders parked), `order_latency_blocks_last` /
`_sum` / `_count` / `_max` (blocks from OrderCreated to our execution), and the shared
`fees_claimable` / `fees_claimed`, `reorgs`, `last_block`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Sequence

from web3.exceptions import ContractLogicError, Web3RPCError
from web3.logs import DISCARD

from keepers.chain import Chain, ChainError
from keepers.decide.orders import (
    KIND_NAMES,
    REASON_NAMES,
    Batch,
    Order,
    Parked,
    Status,
    available,
    isolate,
    markets_of,
    park,
    plan_batches,
    select_for_push,
    triage,
)
from keepers.decide.prices import Push, fmt_wad
from keepers.eventbook import Change, EventBook, _hex
from keepers.fees import CLAIM_EVERY_TICKS, CLAIM_THRESHOLD_USD, claim_fees
from keepers.log import Log
from keepers.metrics import Metrics
from keepers.settings import KeeperSettings

STATE_VERSION = 1
STATE_FILE = "orders.json"
CALL_ERRORS = (ContractLogicError, Web3RPCError)


# ---------------------------------------------------------------- the pending orders


@dataclass
class OrderRecord:
    """A pending order as its events left it (OrderCreated, then any OrderUpdated)."""

    order_id: int
    owner: str
    market: int
    kind: int
    is_long: bool
    collateral_delta: int  # token units
    size_delta: int  # WAD USD
    acceptable_price: int  # WAD
    trigger_price: int  # WAD
    execution_fee: int  # token units
    placed_at: int  # s
    price_floor: int  # s
    created_block: int
    block: int  # of the last event applied
    log_index: int

    @property
    def order(self) -> Order:
        return Order(self.order_id, self.market, self.kind, self.is_long, self.acceptable_price,
                     self.trigger_price, self.price_floor)


class PendingOrders(EventBook[int, OrderRecord]):
    """The pending orders of one OrderBook: `orders` maps an order id to its record. An
    order appears with OrderCreated, changes with OrderUpdated and goes with OrderExecuted
    or OrderCancelled; a `Change`'s kind is "created", "updated", "executed" or
    "cancelled" ("update"/"close" after a reorg's undo)."""

    state_file = STATE_FILE
    state_version = STATE_VERSION
    records_field = "orders"
    contract_field = "order_book"
    gauge = "orders_pending"
    label = "orders"

    def __init__(self, chain: Chain, settings: KeeperSettings, log: Log, metrics: Metrics | None = None) -> None:
        super().__init__(chain, settings, log, metrics, chain.order_book)

    @property
    def orders(self) -> dict[int, OrderRecord]:
        return self.records

    def event_types(self) -> list[Any]:
        events = self.contract.events
        return [events.OrderCreated, events.OrderUpdated, events.OrderExecuted, events.OrderCancelled]

    def apply(self, event: Any) -> Change[int, OrderRecord] | None:
        args = event["args"]
        block, log_index = int(event["blockNumber"]), int(event["logIndex"])
        order_id = int(args["order_id"])
        before = self.records.get(order_id)
        if before is not None and (before.block, before.log_index) >= (block, log_index):
            return None  # a rescan of an event already applied
        name = event["event"]
        receiver = None
        if name == "OrderCreated":
            after: OrderRecord | None = OrderRecord(
                order_id=order_id, owner=str(args["owner"]), market=int(args["market"]),
                kind=int(args["kind"]), is_long=bool(args["is_long"]),
                collateral_delta=int(args["collateral_delta"]), size_delta=int(args["size_delta"]),
                acceptable_price=int(args["acceptable_price"]), trigger_price=int(args["trigger_price"]),
                execution_fee=int(args["execution_fee"]), placed_at=int(args["placed_at"]),
                price_floor=int(args["price_floor"]), created_block=block, block=block, log_index=log_index,
            )
            kind = "created"
        elif before is None:
            return None  # already gone (a rescan), or never seen
        elif name == "OrderUpdated":
            after = replace(
                before, size_delta=int(args["size_delta"]), acceptable_price=int(args["acceptable_price"]),
                trigger_price=int(args["trigger_price"]), placed_at=int(args["placed_at"]),
                price_floor=int(args["price_floor"]), block=block, log_index=log_index,
            )
            kind = "updated"
        else:
            after = None
            kind = "executed" if name == "OrderExecuted" else "cancelled"
            receiver = str(args["fee_receiver"]) if name == "OrderExecuted" else None
        self._put(order_id, after, block, log_index)
        return Change(kind, order_id, block, log_index, _hex(event.get("transactionHash")), after, receiver)

    def encode_record(self, record: OrderRecord) -> dict[str, Any]:
        return asdict(record)

    def decode_record(self, data: dict[str, Any]) -> OrderRecord:
        return OrderRecord(**data)

    def key_of(self, record: OrderRecord) -> int:
        return record.order_id


# ---------------------------------------------------------------- the keeper


@dataclass(frozen=True)
class _Prices:
    """A push planned for this tick: the pusher's steps (market ids), the last carrying
    the orders."""

    steps: tuple[tuple[int, tuple[int, ...], tuple[int, ...]], ...]  # (observed_at, markets, prices)

    @property
    def last(self) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        return self.steps[-1]


class OrderKeeper:
    """A keeper for `Runner`: `startup()`, `tick()`, `shutdown()`. `prices` is the price
    pusher whose source and decisions it pushes with (None: it only executes with the
    Oracle's prices); with `start_prices` it starts that pusher itself (when it is not also
    run as a keeper)."""

    name = "orders"

    def __init__(self, chain: Chain, settings: KeeperSettings, log: Log, metrics: Metrics,
                 prices: Any = None, start_prices: bool = False,
                 claim_threshold_usd: int = CLAIM_THRESHOLD_USD) -> None:
        if "OrderBook" not in chain.contracts:
            raise ChainError(f"{settings.deployment} has no OrderBook (deploy again with this version)")
        self.chain, self.settings, self.log, self.metrics = chain, settings, log, metrics
        self.prices, self.start_prices = prices, start_prices
        self.claim_threshold_usd = claim_threshold_usd
        self.account = chain.account.address
        self.fee_receiver = self.account  # the Vault pays a credit only to its owner (`claim`)
        self.book = PendingOrders(chain, settings, log, metrics)
        self.in_flight: dict[int, float] = {}  # id -> monotonic time it is released
        self.done: dict[int, int] = {}  # decided by our transaction -> block of the receipt
        self.parked: dict[int, Parked] = {}
        self.is_keeper = False
        self.token_scale = 0
        self.ticks = 0
        self._last_seen: tuple[Any, ...] = ()

    # ------------------------------------------------------------ lifecycle

    def startup(self) -> None:
        """Check the role, start the pusher when it is ours, rebuild (or resume) the
        pending orders."""
        self.token_scale = int(self.chain.call(self.chain.perp.functions.token_scale()))
        self.is_keeper = bool(self.chain.call(self.chain.order_book.functions.keepers(self.account)))
        if not self.is_keeper:
            self.log.warn("not_order_keeper", account=self.account,
                          reason="not an authorised keeper: orders execute only after their timeout, no pushes")
        if self.prices is not None and self.start_prices:
            self.prices.startup()
        self.book.start()
        self._follow([])
        self.log("orders_ready", account=self.account, orders=len(self.book.orders), cursor=self.book.cursor,
                 keeper=self.is_keeper, pushes_prices=self.pushes_prices)

    def shutdown(self) -> None:
        self.log("orders_stopped", orders=len(self.book.orders), in_flight=len(self.in_flight),
                 parked=len(self.parked))

    @property
    def pushes_prices(self) -> bool:
        return self.prices is not None and self.is_keeper

    def tick(self) -> None:
        """Follow new blocks, ask the chain about every pending order, send what it would
        fill or cancel (with a push for the ones a fresh price decides)."""
        self.ticks += 1
        self._follow(self.book.sync())
        candidates = available(self.book.orders, self.in_flight, self.parked, time.monotonic())
        candidates = [i for i in candidates if i not in self.done]
        if candidates:
            self.execute(candidates)
        else:
            self.metrics.set("orders_ready", 0)
            self.metrics.set("orders_waiting", 0)
        if (self.ticks - 1) % CLAIM_EVERY_TICKS == 0:
            self.claim()

    # ------------------------------------------------------------ following

    def _follow(self, changes: list[Change[int, OrderRecord]]) -> None:
        for change in changes:
            if change.kind in ("executed", "cancelled"):
                self.log("order_gone", order=change.key, how=change.kind, block=change.block, tx=change.tx_hash)
        now = time.monotonic()
        self.done = {i: b for i, b in self.done.items() if b > self.book.cursor}
        self.in_flight = {i: t for i, t in self.in_flight.items() if t > now}
        self.parked = {i: p for i, p in self.parked.items() if i in self.book.orders}
        self.metrics.set("orders_pending", len(self.book.orders))
        self.metrics.set("orders_parked", len(self.parked))

    # ------------------------------------------------------------ deciding

    def statuses(self, ids: Sequence[int]) -> dict[int, Status]:
        """`order_status(id, as_keeper)` on the pending block for each id, in JSON-RPC
        batches of `order_status_batch`; an id whose call fails is left out (logged)."""
        out: dict[int, Status] = {}
        book = self.chain.order_book
        size = self.settings.order_status_batch
        for start in range(0, len(ids), size):
            chunk = ids[start:start + size]
            answers = self.chain.call_many([book.functions.order_status(i, self.is_keeper) for i in chunk], "pending")
            for order_id, answer in zip(chunk, answers):
                if isinstance(answer, Exception):
                    self.log.warn("status_failed", order=order_id, reason=str(answer))
                    continue
                out[order_id] = Status(int(answer[0]), int(answer[1]))
        return out

    def _plan_prices(self, waiting: Sequence[int]) -> tuple[_Prices | None, list[int]]:
        """The push for the orders that wait for a price, and those a push decides; (None,
        []) without a price source or when no order would be decided."""
        if not self.pushes_prices or not waiting:
            return None, []
        orders = {i: self.book.orders[i].order for i in waiting if i in self.book.orders}
        ids_of = dict(self.chain.deployment.markets)  # name -> market id
        every = frozenset(ids_of.values())
        wanted = frozenset().union(*(markets_of(o, every) for o in orders.values()))
        names = sorted(n for n, m in ids_of.items() if m in wanted)
        if not names:
            return None, []
        plan, _now = self.prices.plan_now(names, force_reason=f"{len(orders)} order(s) wait for a newer price")
        if not plan.pushes:
            return None, []
        last: Push = plan.pushes[-1]
        prices = {ids_of[n]: p for n, p in last.prices.items()}
        chosen = select_for_push(orders, list(orders), prices, last.observed_at, every)
        if not chosen:
            return None, []
        needed = frozenset().union(*(markets_of(orders[i], every) for i in chosen))
        steps = []
        for push in plan.pushes:
            kept = {ids_of[n]: p for n, p in push.prices.items() if ids_of[n] in needed}
            if kept:
                steps.append((push.observed_at, tuple(kept), tuple(kept.values())))
        self.log("push_planned", why=plan.reason, orders=chosen, observed_at=last.observed_at,
                 prices={n: fmt_wad(p) for n, p in last.prices.items() if ids_of[n] in needed},
                 steps=len(steps))
        return _Prices(tuple(steps)), chosen

    # ------------------------------------------------------------ acting

    def execute(self, candidates: Sequence[int]) -> None:
        """Ask the chain about `candidates` and send what it would decide."""
        statuses = self.statuses(candidates)
        found = triage(statuses)
        self.metrics.set("orders_ready", len(found.ready))
        self.metrics.set("orders_waiting", sum(found.waiting.values()))
        prices, pushed = self._plan_prices(found.need_price)
        batches = plan_batches(pushed, found.ready, self.settings.order_batch_size,
                               self.settings.order_batches_per_tick)
        seen = (len(found.ready), len(pushed), tuple(sorted(found.waiting.items())))
        if batches or seen != self._last_seen:  # the waiting ones are logged when they change
            self.log("orders_seen", ready=len(found.ready), pushed=len(pushed),
                     waiting={_code_name(c): n for c, n in sorted(found.waiting.items())}, batches=len(batches))
        self._last_seen = seen
        ready = set(found.ready)
        for batch in batches:
            if batch.with_prices and prices is not None:
                if self._send_batch(batch, prices):
                    continue
                # the push did not land: what rode on it waits; the ready orders go alone
                prices = None
                batch = Batch(tuple(i for i in batch.ids if i in ready and i not in self.in_flight))
                if not batch.ids:
                    continue
            self._send_batch(batch, None)

    def _send_batch(self, batch: Batch, prices: _Prices | None) -> bool:
        """Probe, isolate and send one planned batch, with `prices` pushed in its first
        transaction. False when that push did not land (nothing of the batch was sent
        then, unless a transaction is still waiting for its receipt)."""
        receiver = self.fee_receiver
        book = self.chain.order_book

        def plain(ids: Sequence[int]) -> Any:
            return book.functions.execute_orders(list(ids), receiver)

        build = plain
        if prices is not None:
            for observed_at, markets, values in prices.steps[:-1]:  # a large move's first steps
                fn = book.functions.execute_orders_with_prices(list(markets), list(values), observed_at, [], receiver)
                sent = self.chain.send(fn, "push_step", observed_at=observed_at, markets=list(markets))
                if sent.status != 1:
                    self.metrics.inc("push_failed")
                    return False
            at, markets, values = prices.last

            def build(ids: Sequence[int]) -> Any:
                return book.functions.execute_orders_with_prices(list(markets), list(values), at, list(ids), receiver)

            refused = self._probe(build([]))
            if isinstance(refused, str):  # the Oracle refuses the push itself
                self.metrics.inc("push_refused")
                self.log.warn("push_refused", observed_at=at, markets=list(markets), reason=refused)
                return False
        groups = self._groups(list(batch.ids), build)
        landed = prices is None
        for group in groups:
            status = self._send(build(group) if not landed else plain(group), group, with_prices=not landed)
            landed = landed or status == 1
            if not landed and status == -2:
                return True  # the push may still land: nothing more on it until then
        return landed or not groups

    def _probe(self, fn: Any) -> tuple[int, int] | str:
        """What the call would do on the pending block: (executed, cancelled), or the
        revert reason."""
        try:
            executed, cancelled = self.chain.call(fn, "pending")
            return int(executed), int(cancelled)
        except CALL_ERRORS as exc:
            return str(getattr(exc, "message", None) or exc)

    def _groups(self, ids: list[int], build: Callable[[Sequence[int]], Any]) -> list[list[int]]:
        """The groups of `ids` to send: all of them when the call passes; else the parts
        that pass after bisection (merged when the merge passes too), the orders that fail
        alone parked."""
        first = self._probe(build(ids))
        if not isinstance(first, str):
            if first == (0, 0):
                self.log("batch_empty", orders=ids)  # decided by someone else, or waiting again
                return []
            return [ids]
        self.log.warn("batch_reverts", orders=ids, reason=first)
        result = isolate(ids, lambda part: not isinstance(self._probe(build(part)), str))
        now = time.monotonic()
        for order_id in result.bad:
            reason = self._probe(build([order_id]))
            self.parked[order_id] = park(self.parked.get(order_id), now, str(reason),
                                         self.settings.order_retry_s, self.settings.order_retry_max_s)
            self.metrics.inc("order_failures")
            self.log.error("order_parked", order=order_id, reason=reason, failures=self.parked[order_id].failures,
                           retry_in_s=round(self.parked[order_id].until - now, 3))
        self.metrics.set("orders_parked", len(self.parked))
        self.log("batch_isolated", good=[list(p) for p in result.good], bad=list(result.bad), probes=result.probes)
        if not result.good:
            return []
        merged = list(result.merged)
        if len(result.good) > 1 and not isinstance(self._probe(build(merged)), str):
            return [merged]
        return [list(part) for part in result.good]

    def _send(self, fn: Any, ids: list[int], with_prices: bool) -> int:
        """Send one batch and account for it; returns `Sent.status` (1: mined, 0:
        reverted, -1: not sent, -2: no receipt in time)."""
        label = "execute_orders_with_prices" if with_prices else "execute_orders"
        hold = time.monotonic() + self.settings.receipt_timeout_s * 2
        for order_id in ids:
            self.in_flight[order_id] = hold
        sent = self.chain.send(fn, label, orders=ids)
        if sent.status == -2:  # may still land: keep the ids in flight until `hold`
            self.metrics.inc("order_batches_failed")
            return sent.status
        if sent.status != 1:
            self.metrics.inc("order_batches_failed")
            self._release(ids)
            return sent.status
        self.metrics.inc("order_batches_sent")
        if with_prices:
            self.metrics.inc("order_price_pushes")
        executed, cancelled = self._decided_by(sent.tx_hash or "")
        for order_id, event in executed.items():
            self.done[order_id] = sent.block
            self.parked.pop(order_id, None)
            record = self.book.orders.get(order_id)
            if record is not None:
                latency = sent.block - record.created_block
                self.metrics.set("order_latency_blocks_last", latency)
                self.metrics.inc("order_latency_blocks_sum", latency)
                self.metrics.inc("order_latency_blocks_count")
                longest = max(latency, self.metrics.get("order_latency_blocks_max"))
                self.metrics.set("order_latency_blocks_max", longest)
            self.log("order_executed", order=order_id, kind=_kind_name(record), price=fmt_wad(int(event["price"])),
                     fee=int(event["execution_fee"]), tx=sent.tx_hash, block=sent.block)
        for order_id, event in cancelled.items():
            self.done[order_id] = sent.block
            self.parked.pop(order_id, None)
            self.log("order_cancelled", order=order_id, kind=_kind_name(self.book.orders.get(order_id)),
                     code=int(event["reason_code"]), reason=str(event["reason"]), fee=int(event["fee_paid"]),
                     tx=sent.tx_hash, block=sent.block)
        self.metrics.inc("orders_executed", len(executed))
        self.metrics.inc("orders_cancelled", len(cancelled))
        self._release(ids)
        self.log("orders_done", tx=sent.tx_hash, block=sent.block, gas_used=sent.gas_used, sent=len(ids),
                 executed=sorted(executed), cancelled=sorted(cancelled),
                 left=len(ids) - len(executed) - len(cancelled))
        return sent.status

    def _release(self, ids: Sequence[int]) -> None:
        for order_id in ids:
            self.in_flight.pop(order_id, None)

    def _decided_by(self, tx_hash: str) -> tuple[dict[int, Any], dict[int, Any]]:
        """The orders our transaction executed and cancelled, with their events' args."""
        receipt = self.chain.retry(lambda: self.chain.w3.eth.get_transaction_receipt(tx_hash))
        events = self.chain.order_book.events
        executed = {int(e["args"]["order_id"]): e["args"]
                    for e in events.OrderExecuted().process_receipt(receipt, errors=DISCARD)
                    if str(e["args"]["executor"]) == self.account}
        cancelled = {int(e["args"]["order_id"]): e["args"]
                     for e in events.OrderCancelled().process_receipt(receipt, errors=DISCARD)
                     if str(e["args"]["canceller"]) == self.account}
        return executed, cancelled

    def claim(self) -> int:
        """Claim the fees credited to the keeper in the Vault once they exceed
        `claim_threshold_usd`; return the token units claimed."""
        return claim_fees(self.chain, self.metrics, self.account, self.token_scale, self.claim_threshold_usd)


def _kind_name(record: OrderRecord | None) -> str | None:
    return KIND_NAMES[record.kind] if record is not None and record.kind < len(KIND_NAMES) else None


def _code_name(code: int) -> str:
    return REASON_NAMES.get(code, str(code))
