"""The open-position set, rebuilt from Perp's events and followed block by block.

Every `PositionUpdate` carries a position's full state after the change (size 0: closed) and
a `Liquidation` closes one, so the set is a fold of those events in (block, log index)
order; nothing is read from storage. The cursor, the reorg handling and the persisted state
(`positions.json` in `settings.state_dir`) are `keepers.eventbook.EventBook`'s: a restart
resumes without a full rescan, a reorg is undone and rescanned. Applying an event is
idempotent by position state (an event at or before the position's last applied event is
ignored), so scanning a block twice is harmless.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from keepers.chain import Chain
from keepers.decide.liquidation import Position, PositionKey
from keepers.eventbook import Change, EventBook, _chunks, _hex
from keepers.log import Log
from keepers.metrics import Metrics
from keepers.settings import KeeperSettings

__all__ = ["STATE_FILE", "STATE_VERSION", "Change", "PositionBook", "PositionRecord", "_chunks"]

STATE_VERSION = 1
STATE_FILE = "positions.json"


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


class PositionBook(EventBook[PositionKey, PositionRecord]):
    """The open positions of one Perp: `positions` maps (account, market, is_long) to the
    last state its events gave it. `start()` once, then `sync()` every tick; a `Change`'s
    kind is "update" (still open), "close" (size 0) or "liquidation"."""

    state_file = STATE_FILE
    state_version = STATE_VERSION
    records_field = "positions"
    contract_field = "perp"
    gauge = "positions_tracked"
    label = "positions"

    def __init__(self, chain: Chain, settings: KeeperSettings, log: Log, metrics: Metrics | None = None) -> None:
        super().__init__(chain, settings, log, metrics, chain.perp)

    @property
    def positions(self) -> dict[PositionKey, PositionRecord]:
        return self.records

    @property
    def perp_address(self) -> str:
        return self.contract_address

    def event_types(self) -> list[Any]:
        return [self.contract.events.PositionUpdate, self.contract.events.Liquidation]

    def apply(self, event: Any) -> Change[PositionKey, PositionRecord] | None:
        """Apply one decoded PositionUpdate or Liquidation event; None when it is not newer
        than the position's last applied event (a rescan)."""
        args = event["args"]
        block, log_index = int(event["blockNumber"]), int(event["logIndex"])
        key: PositionKey = (str(args["account"]), int(args["market"]), bool(args["is_long"]))
        before = self.records.get(key)
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
        self._put(key, after, block, log_index)
        return Change(kind, key, block, log_index, tx_hash, after, receiver)

    # ------------------------------------------------------------ persistence

    def encode_record(self, record: PositionRecord) -> dict[str, Any]:
        return asdict(record)

    def decode_record(self, data: dict[str, Any]) -> PositionRecord:
        return PositionRecord(**data)

    def encode_key(self, key: PositionKey) -> Any:
        return list(key)

    def decode_key(self, data: Any) -> PositionKey:
        return (data[0], data[1], data[2])

    def key_of(self, record: PositionRecord) -> PositionKey:
        return record.key

