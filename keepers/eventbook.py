"""A set of records folded from one contract's events and followed block by block: the
machinery under the liquidator's position book (`keepers.positions`) and the order keeper's
pending orders (`keepers.orders`).

A subclass names the events to fetch and says how each one changes its records
(`apply`, through `_put`); this base fetches them in (block, log index) order in chunks of
`log_chunk_blocks`, persists the cursor (the last block processed, with that block's hash)
and the records as JSON in `settings.state_dir` (written atomically), so a restart resumes
without a full rescan.

Reorgs. Each event applied in a recent block is journalled with the record's state before
it (an undo log). On start, the last `reorg_depth` blocks are undone and scanned again; when
the stored hash of the cursor block no longer matches the chain's, the book finds the newest
block it recorded that still matches, undoes everything after it (and at least the last
`reorg_depth` blocks) and rescans from there. A reorg older than every hash it kept rebuilds
the book from the deployment block. A subclass makes applying an event idempotent (an event
at or before its record's last applied event is ignored), so scanning a block twice is
harmless.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Hashable, TypeVar

from web3.exceptions import BlockNotFound

from keepers.chain import Chain
from keepers.log import Log
from keepers.metrics import Metrics
from keepers.settings import KeeperSettings

KEPT_HASHES_EXTRA = 4  # blocks of hashes kept beyond 2 x reorg_depth, to find a fork point

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


@dataclass(frozen=True)
class Change(Generic[K, R]):
    """One event the book applied (or undid): `kind` is the subclass's word for it ("update"
    and "close" when a rewind restores or drops a record); `record` the record after it
    (None when gone)."""

    kind: str
    key: K
    block: int
    log_index: int
    tx_hash: str
    record: R | None
    fee_receiver: str | None = None  # position liquidations and order executions


@dataclass
class _Undo(Generic[K, R]):
    block: int
    log_index: int
    key: K
    before: R | None


class EventBook(Generic[K, R]):
    """Records keyed by `K`, each the fold of its events. `start()` once, then `sync()`
    every tick; `records` is the current set."""

    #: the state file's name under `state_dir`, and its layout version
    state_file: ClassVar[str]
    state_version: ClassVar[int] = 1
    #: the state file's field names for the records and the followed contract's address
    records_field: ClassVar[str]
    contract_field: ClassVar[str]
    #: the gauge that counts the records, and the prefix of the book's own log events
    gauge: ClassVar[str]
    label: ClassVar[str]

    def __init__(self, chain: Chain, settings: KeeperSettings, log: Log, metrics: Metrics | None,
                 contract: Any) -> None:
        self.chain, self.settings, self.log = chain, settings, log
        self.metrics = metrics or chain.metrics
        self.contract = contract
        self.contract_address = str(contract.address)
        self.deploy_block = chain.deployment.deploy_block
        self.path: Path = settings.state_dir / self.state_file
        self.records: dict[K, R] = {}
        self.cursor = self.deploy_block - 1  # last block processed
        self.hashes: dict[int, str] = {}  # recent cursor blocks and their hashes
        self._undo: list[_Undo[K, R]] = []
        self.last_scan_from: int | None = None  # the first block of the last scan (tests, logs)
        self.rewinds = 0  # how many times the book went back (reorg, restart, rebuild)...
        self.last_rewind_to = self.deploy_block  # ...and the block it last rescanned from

    # ------------------------------------------------------------ the subclass's part

    def event_types(self) -> list[Any]:
        """The contract's event classes to fetch (`contract.events.X`)."""
        raise NotImplementedError

    def apply(self, event: Any) -> Change[K, R] | None:
        """Apply one decoded event (through `_put`); None when it changes nothing (a
        rescan of an event already applied)."""
        raise NotImplementedError

    def encode_record(self, record: R) -> dict[str, Any]:
        raise NotImplementedError

    def decode_record(self, data: dict[str, Any]) -> R:
        raise NotImplementedError

    def encode_key(self, key: K) -> Any:
        return key

    def decode_key(self, data: Any) -> K:
        return data

    def key_of(self, record: R) -> K:
        raise NotImplementedError

    def _put(self, key: K, after: R | None, block: int, log_index: int) -> R | None:
        """Set (or with None drop) a record, journalled for a rewind; returns the record
        before."""
        before = self.records.get(key)
        self._undo.append(_Undo(block, log_index, key, before))
        if after is None:
            self.records.pop(key, None)
        else:
            self.records[key] = after
        return before

    # ------------------------------------------------------------ lifecycle

    def start(self) -> list[Change[K, R]]:
        """Load the persisted state (if it is this chain's and this contract's), undo and
        rescan the last `reorg_depth` blocks (or more after a reorg), then catch up to the
        head."""
        self._load()
        if self.cursor >= self.deploy_block:
            fork = self._fork_point()
            if fork is None:
                self.metrics.inc("reorgs")
                self.log.warn("reorg_rebuild", cursor=self.cursor, reason="no recorded block matches the chain")
                self._reset()
            else:
                rescan = min(fork + 1, self.cursor - self.settings.reorg_depth)
                if fork != self.cursor:  # the chain changed while the keeper was down
                    self.metrics.inc("reorgs")
                    self.log.warn("reorg", cursor=self.cursor, fork_after=fork, rescan_from=rescan)
                self._rewind(rescan)
        return self.sync()

    def sync(self) -> list[Change[K, R]]:
        """Apply every event up to the head; return what changed, in order."""
        head = self.chain.head()
        changes: list[Change[K, R]] = []
        if self.cursor >= self.deploy_block and self._hash(self.cursor) != self.hashes.get(self.cursor):
            fork = self._fork_point()
            self.metrics.inc("reorgs")
            if fork is None:
                self.log.warn("reorg_rebuild", cursor=self.cursor, head=head)
                changes.extend(self._reset())
            else:
                rescan = min(fork + 1, self.cursor - self.settings.reorg_depth)
                self.log.warn("reorg", cursor=self.cursor, fork_after=fork, rescan_from=max(rescan, self.deploy_block))
                changes.extend(self._rewind(rescan))
        if head <= self.cursor:
            return changes
        start = self.cursor + 1
        self.last_scan_from = start
        # chunk ends are the blocks whose hashes get recorded; after a long catch-up one of
        # them is the block just before the reorg window, so a fork found later inside the
        # window is undone, not rebuilt from scratch
        anchor = head - self.settings.reorg_depth - 1
        for first, last in _chunks(start, head, self.settings.log_chunk_blocks, anchor):
            last_hash = self._hash(last)
            changes.extend(self._apply_range(first, last))
            self.cursor = last
            if last_hash is not None:
                self.hashes[last] = last_hash
            self._prune()
            self._save()
        self.metrics.set(self.gauge, len(self.records))
        return changes

    def _apply_range(self, start: int, end: int) -> list[Change[K, R]]:
        logs: list[Any] = []
        for event_type in self.event_types():
            logs.extend(self.chain.logs(event_type, start, end))
        logs.sort(key=lambda e: (e["blockNumber"], e["logIndex"]))
        out = []
        for event in logs:
            change = self.apply(event)
            if change is not None:
                out.append(change)
        return out

    # ------------------------------------------------------------ reorgs

    def _hash(self, block: int) -> str | None:
        """The chain's hash of `block`, None when the chain has no such block (any other
        RPC failure propagates: it must not pass for a reorg)."""
        try:
            data = self.chain.retry(lambda: self.chain.w3.eth.get_block(block))
        except BlockNotFound:
            return None
        return _hex(data["hash"]) if data is not None else None

    def _fork_point(self) -> int | None:
        """The newest recorded block whose hash the chain still has (the cursor itself when
        nothing changed); None when none matches."""
        for block in sorted(self.hashes, reverse=True):
            if self._hash(block) == self.hashes[block]:
                return block
        return None

    def _rewind(self, to_block: int) -> list[Change[K, R]]:
        """Undo every event applied in blocks >= `to_block` and move the cursor before it.
        Returns the undone records' restored states as "update" / "close" changes, so a
        listener can re-index them."""
        to_block = max(to_block, self.deploy_block)
        self.rewinds, self.last_rewind_to = self.rewinds + 1, to_block
        changes: list[Change[K, R]] = []
        while self._undo and self._undo[-1].block >= to_block:
            entry = self._undo.pop()
            if entry.before is None:
                self.records.pop(entry.key, None)
            else:
                self.records[entry.key] = entry.before
            changes.append(Change("update" if entry.before else "close", entry.key, entry.block,
                                  entry.log_index, "", entry.before))
        self.cursor = min(self.cursor, to_block - 1)
        self.hashes = {b: h for b, h in self.hashes.items() if b <= self.cursor}
        if self.cursor >= self.deploy_block and self.cursor not in self.hashes:
            # the new cursor is at or before the fork point: the chain's block is ours
            cursor_hash = self._hash(self.cursor)
            if cursor_hash is not None:
                self.hashes[self.cursor] = cursor_hash
        self.metrics.set(self.gauge, len(self.records))
        return changes

    def _reset(self) -> list[Change[K, R]]:
        """Forget everything (to rebuild from the deployment block); returns a "close" for
        every record dropped, so a listener drops them too."""
        dropped: list[Change[K, R]] = [Change("close", key, self.cursor, 0, "", None) for key in self.records]
        self.rewinds, self.last_rewind_to = self.rewinds + 1, self.deploy_block
        self.records, self.hashes, self._undo = {}, {}, []
        self.cursor = self.deploy_block - 1
        return dropped

    def _prune(self) -> None:
        """Keep the hashes of the blocks from cursor - 2 x reorg_depth - a few on (where a
        fork point is looked for), and the undo entries of every block a rewind may go back
        to: after the oldest kept hash, and at least the last `reorg_depth` blocks."""
        oldest_kept = self.cursor - 2 * self.settings.reorg_depth - KEPT_HASHES_EXTRA
        self.hashes = {b: h for b, h in self.hashes.items() if b >= oldest_kept}
        oldest = min(self.hashes) if self.hashes else self.cursor
        floor = min(oldest + 1, self.cursor - self.settings.reorg_depth)
        if self._undo and self._undo[0].block < floor:
            self._undo = [u for u in self._undo if u.block >= floor]

    # ------------------------------------------------------------ persistence

    def _save(self) -> None:
        """Write the state atomically: a temporary file, fsync'd, then renamed over."""
        data = {
            "version": self.state_version,
            "chain_id": self.chain.chain_id,
            self.contract_field: self.contract_address,
            "deploy_block": self.deploy_block,
            "cursor": self.cursor,
            "hashes": {str(b): h for b, h in self.hashes.items()},
            self.records_field: [self.encode_record(r) for r in self.records.values()],
            "undo": [
                {"block": u.block, "log_index": u.log_index, "key": self.encode_key(u.key),
                 "before": self.encode_record(u.before) if u.before is not None else None}
                for u in self._undo
            ],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
            if (data.get("version"), data.get("chain_id"), data.get(self.contract_field), data.get("deploy_block")) != (
                self.state_version, self.chain.chain_id, self.contract_address, self.deploy_block
            ):
                self.log.warn(f"{self.label}_state_ignored", path=str(self.path),
                              reason=f"another chain, {self.contract_field} or version")
                return
            records = [self.decode_record(r) for r in data[self.records_field]]
            undo = [
                _Undo(u["block"], u["log_index"], self.decode_key(u["key"]),
                      self.decode_record(u["before"]) if u["before"] else None)
                for u in data["undo"]
            ]
            self.hashes = {int(b): str(h) for b, h in data["hashes"].items()}
            self.cursor = int(data["cursor"])
        except (ValueError, KeyError, TypeError) as exc:
            self.log.warn(f"{self.label}_state_ignored", path=str(self.path), reason=f"unreadable: {exc}")
            self._reset()
            return
        self.records = {self.key_of(r): r for r in records}
        self._undo = undo
        self.log(f"{self.label}_loaded", cursor=self.cursor, **{self.label: len(self.records)})


def _chunks(start: int, end: int, size: int, cut: int) -> list[tuple[int, int]]:
    """[start, end] in ranges of at most `size` blocks, one of them ending at `cut` when
    `cut` lies inside."""
    out = []
    for first, last in ((start, min(cut, end)), (max(cut + 1, start), end)):
        while first <= last:
            out.append((first, min(first + size - 1, last)))
            first += size
    return out


def _hex(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    text = value.hex() if hasattr(value, "hex") and not isinstance(value, str) else str(value)
    return text if text.startswith("0x") else "0x" + text
