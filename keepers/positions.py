"""The open-position set, rebuilt from Perp's events and followed block by block.

Every `PositionUpdate` carries a position's full state after the change (size 0: closed) and
a `Liquidation` closes one, so the set is a fold of those events in (block, log index)
order; nothing is read from storage. The book persists its cursor (the last block it
processed, with that block's hash) and the positions as JSON in `settings.state_dir`
(written atomically), so a restart resumes without a full rescan.

Reorgs. Each event applied in a recent block is journalled with the position's state
before it (an undo log). On start, the last `reorg_depth` blocks are undone and scanned
again; when the stored hash of the cursor block no longer matches the chain's, the book
finds the newest block it recorded that still matches, undoes everything after it (and at
least the last `reorg_depth` blocks) and rescans from there. A reorg older than every hash
it kept rebuilds the book from the deployment block. Applying an event is idempotent by
position state (an event at or before the position's last applied event is ignored), so
scanning a block twice is harmless.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from web3.exceptions import BlockNotFound

from keepers.chain import Chain
from keepers.decide.liquidation import Position, PositionKey
from keepers.log import Log
from keepers.metrics import Metrics
from keepers.settings import KeeperSettings

STATE_VERSION = 1
STATE_FILE = "positions.json"
KEPT_HASHES_EXTRA = 4  # blocks of hashes kept beyond 2 x reorg_depth, to find a fork point


@dataclass
class PositionRecord:
    """A position as its last event left it, and where that event was."""

    account: str
    market: int
    is_long: bool
    size_usd: int  # WAD
    size_tokens: int  # WAD
    collateral: int  # token units
    borrow_index: int
    funding_index: int
    block: int
    log_index: int

    @property
    def key(self) -> PositionKey:
        return (self.account, self.market, self.is_long)

    @property
    def position(self) -> Position:
        return Position(self.account, self.market, self.is_long, self.size_usd, self.size_tokens,
                        self.collateral, self.borrow_index, self.funding_index)


@dataclass(frozen=True)
class Change:
    """One event the book applied: `kind` "update" (still open), "close" (size 0) or
    "liquidation"; `record` the position after it (None when closed)."""

    kind: str
    key: PositionKey
    block: int
    log_index: int
    tx_hash: str
    record: PositionRecord | None
    fee_receiver: str | None = None  # liquidations only


@dataclass
class _Undo:
    block: int
    log_index: int
    key: PositionKey
    before: PositionRecord | None


class PositionBook:
    """The open positions of one Perp: `positions` maps (account, market, is_long) to the
    last state its events gave it. `start()` once, then `sync()` every tick."""

    def __init__(self, chain: Chain, settings: KeeperSettings, log: Log, metrics: Metrics | None = None) -> None:
        self.chain, self.settings, self.log = chain, settings, log
        self.metrics = metrics or chain.metrics
        self.deploy_block = chain.deployment.deploy_block
        self.perp_address = str(chain.perp.address)
        self.path: Path = settings.state_dir / STATE_FILE
        self.positions: dict[PositionKey, PositionRecord] = {}
        self.cursor = self.deploy_block - 1  # last block processed
        self.hashes: dict[int, str] = {}  # recent cursor blocks and their hashes
        self._undo: list[_Undo] = []
        self.last_scan_from: int | None = None  # the first block of the last scan (tests, logs)
        self.rewinds = 0  # how many times the book went back (reorg, restart, rebuild)...
        self.last_rewind_to = self.deploy_block  # ...and the block it last rescanned from

    # ------------------------------------------------------------ lifecycle

    def start(self) -> list[Change]:
        """Load the persisted state (if it is this chain's and this Perp's), undo and rescan
        the last `reorg_depth` blocks (or more after a reorg), then catch up to the head."""
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

    def sync(self) -> list[Change]:
        """Apply every event up to the head; return what changed, in order."""
        head = self.chain.head()
        changes: list[Change] = []
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
        self.metrics.set("positions_tracked", len(self.positions))
        return changes

    # ------------------------------------------------------------ events

    def _apply_range(self, start: int, end: int) -> list[Change]:
        perp = self.chain.perp
        logs = self.chain.logs(perp.events.PositionUpdate, start, end) + self.chain.logs(perp.events.Liquidation, start, end)
        logs.sort(key=lambda e: (e["blockNumber"], e["logIndex"]))
        out = []
        for event in logs:
            change = self.apply(event)
            if change is not None:
                out.append(change)
        return out

    def apply(self, event: Any) -> Change | None:
        """Apply one decoded PositionUpdate or Liquidation event; None when it is not newer
        than the position's last applied event (a rescan)."""
        args = event["args"]
        block, log_index = int(event["blockNumber"]), int(event["logIndex"])
        key: PositionKey = (str(args["account"]), int(args["market"]), bool(args["is_long"]))
        before = self.positions.get(key)
        if before is not None and (before.block, before.log_index) >= (block, log_index):
            return None
        tx_hash = _hex(event.get("transactionHash"))
        if event["event"] == "Liquidation":
            if before is None:
                return None  # already gone (rescan of a closed position)
            after, kind, receiver = None, "liquidation", str(args["fee_receiver"])
        else:
            receiver = None
            if int(args["size_usd"]) == 0:
                if before is None:
                    return None
                after, kind = None, "close"
            else:
                after = PositionRecord(
                    account=key[0], market=key[1], is_long=key[2],
                    size_usd=int(args["size_usd"]), size_tokens=int(args["size_tokens"]),
                    collateral=int(args["collateral"]), borrow_index=int(args["borrow_index"]),
                    funding_index=int(args["funding_index"]), block=block, log_index=log_index,
                )
                kind = "update"
        self._undo.append(_Undo(block, log_index, key, before))
        if after is None:
            del self.positions[key]
        else:
            self.positions[key] = after
        return Change(kind, key, block, log_index, tx_hash, after, receiver)

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

    def _rewind(self, to_block: int) -> list[Change]:
        """Undo every event applied in blocks >= `to_block` and move the cursor before it.
        Returns the undone positions' restored states as "update" / "close" changes, so a
        listener can re-index them."""
        to_block = max(to_block, self.deploy_block)
        self.rewinds, self.last_rewind_to = self.rewinds + 1, to_block
        changes = []
        while self._undo and self._undo[-1].block >= to_block:
            entry = self._undo.pop()
            if entry.before is None:
                self.positions.pop(entry.key, None)
            else:
                self.positions[entry.key] = entry.before
            changes.append(Change("update" if entry.before else "close", entry.key, entry.block,
                                  entry.log_index, "", entry.before))
        self.cursor = min(self.cursor, to_block - 1)
        self.hashes = {b: h for b, h in self.hashes.items() if b <= self.cursor}
        if self.cursor >= self.deploy_block and self.cursor not in self.hashes:
            # the new cursor is at or before the fork point: the chain's block is ours
            cursor_hash = self._hash(self.cursor)
            if cursor_hash is not None:
                self.hashes[self.cursor] = cursor_hash
        self.metrics.set("positions_tracked", len(self.positions))
        return changes

    def _reset(self) -> list[Change]:
        """Forget everything (to rebuild from the deployment block); returns a "close" for
        every position dropped, so a listener drops them too."""
        dropped = [Change("close", key, self.cursor, 0, "", None) for key in self.positions]
        self.rewinds, self.last_rewind_to = self.rewinds + 1, self.deploy_block
        self.positions, self.hashes, self._undo = {}, {}, []
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
            "version": STATE_VERSION,
            "chain_id": self.chain.chain_id,
            "perp": self.perp_address,
            "deploy_block": self.deploy_block,
            "cursor": self.cursor,
            "hashes": {str(b): h for b, h in self.hashes.items()},
            "positions": [asdict(r) for r in self.positions.values()],
            "undo": [
                {"block": u.block, "log_index": u.log_index, "key": list(u.key),
                 "before": asdict(u.before) if u.before else None}
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
            if (data.get("version"), data.get("chain_id"), data.get("perp"), data.get("deploy_block")) != (
                STATE_VERSION, self.chain.chain_id, self.perp_address, self.deploy_block
            ):
                self.log.warn("positions_state_ignored", path=str(self.path), reason="another chain, Perp or version")
                return
            positions = [PositionRecord(**r) for r in data["positions"]]
            undo = [
                _Undo(u["block"], u["log_index"], (u["key"][0], u["key"][1], u["key"][2]),
                      PositionRecord(**u["before"]) if u["before"] else None)
                for u in data["undo"]
            ]
            self.hashes = {int(b): str(h) for b, h in data["hashes"].items()}
            self.cursor = int(data["cursor"])
        except (ValueError, KeyError, TypeError) as exc:
            self.log.warn("positions_state_ignored", path=str(self.path), reason=f"unreadable: {exc}")
            self._reset()
            return
        self.positions = {r.key: r for r in positions}
        self._undo = undo
        self.log("positions_loaded", cursor=self.cursor, positions=len(self.positions))


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
