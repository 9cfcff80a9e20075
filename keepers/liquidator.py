"""The liquidator daemon: follows the open positions (`PositionBook`), and on every tick
finds the unhealthy ones at the current close prices through the liquidation-price index
(`keepers.decide.liquidation`), then liquidates them with `Perp.liquidate_batch`, the fee
credited to the keeper's account in the Vault, which it claims now and then.

Decisions are the pure module's; this class only reads, sends and remembers:
- a position is sent at most once at a time: its key stays in flight from the send until
  the receipt (or, with no receipt in time, for `receipt_timeout_s` more), and the ones the
  batch liquidated (its `Liquidation` logs) stay out until the book has applied that block;
- a batch is first called (`eth_call`): one that would liquidate nothing (a competitor was
  faster, or the price moved back) is not sent; `Chain.send` simulates again before sending;
- with few candidates each is confirmed by `Perp.is_liquidatable` first; with many the local
  health function is trusted and the batch skips any that are healthy on chain.

Metrics: `positions_tracked`, `liquidations_sent` (positions in transactions broadcast),
`liquidations_confirmed` (positions our transactions liquidated), `liquidations_failed`
(positions in batches refused by the call or the simulation, reverted, or without a receipt
in time), `batches_sent`, `fees_claimable` / `fees_claimed` (token units), `reorgs`, and the
chain client's `last_block`. The Vault credits each liquidation's fee to the keeper; it
claims them once `CLAIM_THRESHOLD_USD` ($50) is due, checked every `CLAIM_EVERY_TICKS`.
"""

from __future__ import annotations

import time
from typing import Any

from web3.exceptions import ContractLogicError, Web3RPCError
from web3.logs import DISCARD

from keepers.chain import Chain
from keepers.decide.liquidation import Indices, LiquidationIndex, MarketParams, Position, PositionKey
from keepers.fees import CLAIM_EVERY_TICKS, CLAIM_THRESHOLD_USD, claim_fees
from keepers.log import Log
from keepers.metrics import Metrics
from keepers.positions import Change, PositionBook
from keepers.settings import KeeperSettings

CONFIRM_ON_CHAIN_MAX = 8  # up to this many candidates, each is confirmed by is_liquidatable
PARAMS_REFRESH_TICKS = 600  # re-read every market's settings this often, besides on events
CALL_ERRORS = (ContractLogicError, Web3RPCError)


class Liquidator:
    """A keeper for `Runner`: `startup()`, `tick()`, `shutdown()`."""

    name = "liquidator"

    def __init__(self, chain: Chain, settings: KeeperSettings, log: Log, metrics: Metrics,
                 claim_threshold_usd: int = CLAIM_THRESHOLD_USD,
                 confirm_on_chain_max: int = CONFIRM_ON_CHAIN_MAX) -> None:
        self.chain, self.settings, self.log, self.metrics = chain, settings, log, metrics
        self.claim_threshold_usd = claim_threshold_usd
        self.confirm_on_chain_max = confirm_on_chain_max
        self.account = chain.account.address
        self.book = PositionBook(chain, settings, log, metrics)
        self.index = LiquidationIndex()
        self.in_flight: dict[PositionKey, float] = {}  # key -> monotonic time it is released
        self.done: dict[PositionKey, int] = {}  # liquidated by us -> block of the receipt
        self.token_scale = 0
        self.ticks = 0
        self._config_block = 0  # last block searched for MarketConfigured
        self._rewinds_seen = 0  # the book's rewind count when _config_block was last fixed
        self._no_price: set[tuple[int, bool]] = set()  # sides whose close price reverts (logged once)

    # ------------------------------------------------------------ lifecycle

    def startup(self) -> None:
        """Rebuild (or resume) the position book and index it."""
        self.token_scale = int(self.chain.call(self.chain.perp.functions.token_scale()))
        self.book.start()
        for record in self.book.positions.values():
            self._ensure_market(record.market)
            self.index.upsert(record.position)
        self._config_block, self._rewinds_seen = self.book.cursor, self.book.rewinds
        self.metrics.set("positions_tracked", len(self.book.positions))
        self.log("liquidator_ready", account=self.account, positions=len(self.book.positions),
                 cursor=self.book.cursor)

    def shutdown(self) -> None:
        self.log("liquidator_stopped", positions=len(self.book.positions), in_flight=len(self.in_flight))

    def tick(self) -> None:
        """Follow new blocks, then liquidate what is unhealthy at the current prices."""
        self.ticks += 1
        self._follow(self.book.sync())
        self._refresh_params()
        targets = self.find_targets()
        if targets:
            self.liquidate(targets)
        if (self.ticks - 1) % CLAIM_EVERY_TICKS == 0:
            self.claim()

    # ------------------------------------------------------------ following

    def _follow(self, changes: list[Change]) -> None:
        for change in changes:
            if change.record is None:
                self.index.remove(change.key)
            else:
                self._ensure_market(change.key[1])
                self.index.upsert(change.record.position)
        now = time.monotonic()
        self.done = {k: b for k, b in self.done.items() if b > self.book.cursor}
        self.in_flight = {k: t for k, t in self.in_flight.items() if t > now}
        self.metrics.set("positions_tracked", len(self.book.positions))

    def _ensure_market(self, market: int) -> None:
        if market not in self.index.params:
            self._load_market(market)

    def _load_market(self, market: int) -> None:
        """(Re)read a market's settings from the Configurator and re-index its sides."""
        config = self.chain.call(self.chain.configurator.functions.configs(market))
        risk = self.chain.call(self.chain.configurator.functions.risk_configs(market))
        params = MarketParams.from_configs(config, risk, self.token_scale)
        self.index.set_market(market, params, self._indices(market))

    def _refresh_params(self) -> None:
        """Reload the settings of markets Perp logged `MarketConfigured` for since the last
        look (and of every market now and then)."""
        cursor = self.book.cursor
        if self.book.rewinds != self._rewinds_seen:  # a reorg: look again from where it rescanned
            self._config_block = min(self._config_block, self.book.last_rewind_to - 1)
            self._rewinds_seen = self.book.rewinds
        markets: set[int] = set()
        if cursor > self._config_block:
            logs = self.chain.logs(self.chain.perp.events.MarketConfigured, self._config_block + 1, cursor)
            markets = {int(e["args"]["market"]) for e in logs}
            self._config_block = cursor
        if self.ticks % PARAMS_REFRESH_TICKS == 0:
            markets |= set(self.index.params)
        for market in sorted(markets & set(self.index.params)):
            self._load_market(market)
            self.log("market_params_reloaded", market=market)

    def _indices(self, market: int) -> Indices:
        borrow, funding_long, funding_short = self.chain.call(self.chain.perp.functions.current_indices(market))
        return Indices(int(borrow), int(funding_long), int(funding_short))

    # ------------------------------------------------------------ deciding

    def find_targets(self) -> list[Position]:
        """The positions the local health function finds liquidatable at each side's close
        price, through the index, less those in flight or just liquidated."""
        targets: list[Position] = []
        for market in sorted(self.index.params):
            sides = [s for s in (self.index.side(market, True), self.index.side(market, False)) if len(s)]
            if not sides:
                continue
            now = self._indices(market)
            for side in sides:
                try:
                    price = int(self.chain.call(self.chain.perp.functions.close_price(market, side.is_long)))
                except CALL_ERRORS as exc:  # a stale price: nothing can be liquidated now
                    if (market, side.is_long) not in self._no_price:
                        self.log.warn("no_price", market=market, is_long=side.is_long, reason=str(exc))
                        self._no_price.add((market, side.is_long))
                    continue
                if (market, side.is_long) in self._no_price:
                    self._no_price.discard((market, side.is_long))
                    self.log("price_back", market=market, is_long=side.is_long)
                if side.needs_rebuild(price, now):
                    side.rebuild(now)
                for pos in side.liquidatable(price, now):
                    if pos.key not in self.in_flight and pos.key not in self.done:
                        targets.append(pos)
        targets.sort(key=lambda p: p.key)
        if 0 < len(targets) <= self.confirm_on_chain_max:
            targets = [p for p in targets if self._confirmed(p)]
        return targets

    def _confirmed(self, pos: Position) -> bool:
        try:
            ok = bool(self.chain.call(self.chain.perp.functions.is_liquidatable(pos.account, pos.market, pos.is_long)))
        except CALL_ERRORS as exc:
            self.log.warn("confirm_failed", position=list(pos.key), reason=str(exc))
            return False
        if not ok:
            self.log.warn("health_disagrees", position=list(pos.key), local="liquidatable", chain="healthy")
        return ok

    # ------------------------------------------------------------ acting

    def liquidate(self, targets: list[Position]) -> int:
        """Send `targets` through `liquidate_batch` in chunks of `batch_size`; return how
        many our transactions liquidated."""
        liquidated = 0
        size = self.settings.batch_size
        for start in range(0, len(targets), size):
            liquidated += self._send_batch(targets[start:start + size])
        return liquidated

    def _send_batch(self, chunk: list[Position]) -> int:
        refs = [(p.account, p.market, p.is_long) for p in chunk]
        fn = self.chain.perp.functions.liquidate_batch(refs, self.account)
        try:
            expected = int(self.chain.call(fn))
        except CALL_ERRORS as exc:
            self.log.warn("batch_refused", positions=len(chunk), reason=str(exc))
            self.metrics.inc("liquidations_failed", len(chunk))
            return 0
        if expected == 0:
            self.log("batch_empty", positions=len(chunk))  # gone or healthy again by now
            return 0
        hold = time.monotonic() + self.settings.receipt_timeout_s * 2
        for pos in chunk:
            self.in_flight[pos.key] = hold
        sent = self.chain.send(fn, "liquidate_batch", positions=len(chunk), expected=expected)
        if sent.status == -1:
            self.metrics.inc("liquidations_failed", len(chunk))
            self._release(chunk)
            return 0
        self.metrics.inc("liquidations_sent", len(chunk))
        self.metrics.inc("batches_sent")
        if sent.status == -2:  # may still land: keep the keys in flight until `hold`
            self.metrics.inc("liquidations_failed", len(chunk))
            return 0
        if sent.status == 0:
            self.metrics.inc("liquidations_failed", len(chunk))
            self._release(chunk)
            return 0
        keys = self._liquidated_by(sent.tx_hash or "")
        for key in keys:
            self.done[key] = sent.block
        self._release(chunk)
        self.metrics.inc("liquidations_confirmed", len(keys))
        self.log("liquidated", tx=sent.tx_hash, block=sent.block, sent=len(chunk), liquidated=len(keys),
                 skipped=len(chunk) - len(keys))
        return len(keys)

    def _release(self, chunk: list[Position]) -> None:
        for pos in chunk:
            self.in_flight.pop(pos.key, None)

    def _liquidated_by(self, tx_hash: str) -> list[PositionKey]:
        """The positions whose `Liquidation` our transaction logged."""
        receipt = self.chain.retry(lambda: self.chain.w3.eth.get_transaction_receipt(tx_hash))
        events: Any = self.chain.perp.events.Liquidation().process_receipt(receipt, errors=DISCARD)
        return [
            (str(e["args"]["account"]), int(e["args"]["market"]), bool(e["args"]["is_long"]))
            for e in events
            if str(e["args"]["fee_receiver"]) == self.account
        ]

    def claim(self) -> int:
        """Claim the fees credited to the keeper in the Vault once they exceed
        `claim_threshold_usd`; return the token units claimed."""
        return claim_fees(self.chain, self.metrics, self.account, self.token_scale, self.claim_threshold_usd)
