"""The ADL keeper: on every tick, for every market side, read `RiskEngine.adl_state`; while
a side is over its trigger, rank its profitable positions by the contract's `adl_score`
(ties by position key ascending) and close them one by one with `auto_deleverage`, each for
the size `adl_size_limit` allows at that moment, re-reading the side after every confirmed
close and stopping as soon as the trigger no longer holds (docs/risk.md "ADL").

The ranking and the forecast walk are `keepers.decide.adl`'s (pure, tested without a
chain); the chain stays the judge of every size and of the stop, since the contract clamps
and re-checks each close. The candidates come from a small follower of Perp's
`PositionUpdate` and `Liquidation` events (which accounts may hold a position on each side),
kept here on purpose so this keeper needs no other keeper's state; every candidate is read
from storage before it is ranked, so a stale entry only costs a read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3.exceptions import ContractLogicError, Web3RPCError

from keepers.chain import Chain
from keepers.decide.adl import Candidate, SideState, plan, rank
from keepers.log import Log
from keepers.metrics import Metrics
from keepers.settings import KeeperSettings

#: what a view that reverts raises (e.g. "oracle: stale price")
CALL_ERRORS = (ContractLogicError, Web3RPCError)
#: the factor gauge's cap (the contract says max uint256 for an empty pool)
MAX_GAUGE_BPS = 1_000_000


@dataclass(frozen=True)
class AdlState:
    """RiskEngine.AdlState."""

    pnl_usd: int
    pool_usd: int
    pnl_factor_bps: int
    trigger_bps: int
    target_bps: int
    triggered: bool


class AccountFollower:
    """Which accounts may hold a position on each (market, is_long): a fold of Perp's
    `PositionUpdate` (the size after the change; 0 closes) and `Liquidation` events in
    (block, log index) order, followed from the deployment block. Each sync re-scans the
    last `reorg_depth` blocks; re-applying an event is a no-op (an event at or before the
    last one applied to that position is skipped). Nothing is persisted: a restart scans
    again from the deployment block. A reorg that drops a closing event leaves the account
    out until its position's next event (the liquidator's PositionBook keeps an undo log
    for that; this keeper only needs a superset of the open positions, most of the time)."""

    def __init__(self, chain: Chain, settings: KeeperSettings, log: Log) -> None:
        self.chain, self.settings, self.log = chain, settings, log
        self.deploy_block = chain.deployment.deploy_block
        self.cursor = self.deploy_block - 1  # last block applied
        self.open: dict[tuple[int, bool], set[str]] = {}
        # (account, market, is_long) -> (block, log index) of its last event applied
        self._applied: dict[tuple[str, int, bool], tuple[int, int]] = {}

    def sync(self) -> int:
        """Apply every event up to the head; return the head."""
        head = self.chain.head()
        start = max(self.cursor + 1 - self.settings.reorg_depth, self.deploy_block)
        if start > head:
            return head
        perp = self.chain.perp
        logs = self.chain.logs(perp.events.PositionUpdate, start, head)
        logs += self.chain.logs(perp.events.Liquidation, start, head)
        for event in sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"])):
            self._apply(event)
        self.cursor = head
        return head

    def accounts(self, market: int, is_long: bool) -> list[str]:
        return sorted(self.open.get((market, is_long), ()))

    def _apply(self, event: Any) -> None:
        args = event["args"]
        position = (str(args["account"]), int(args["market"]), bool(args["is_long"]))
        where = (int(event["blockNumber"]), int(event["logIndex"]))
        if self._applied.get(position, (-1, -1)) >= where:
            return
        self._applied[position] = where
        side = self.open.setdefault(position[1:], set())
        if event["event"] == "PositionUpdate" and int(args["size_usd"]) > 0:
            side.add(position[0])
        else:
            side.discard(position[0])


class AdlKeeper:
    """A keeper for `Runner`: `startup()`, `tick()`, `shutdown()`."""

    name = "adl"

    def __init__(self, chain: Chain, settings: KeeperSettings, log: Log, metrics: Metrics) -> None:
        self.chain, self.settings, self.log, self.metrics = chain, settings, log, metrics
        self.follower = AccountFollower(chain, settings, log)
        self.markets = dict(sorted(chain.deployment.markets.items(), key=lambda item: item[1]))
        self.token_scale = 0
        # position keys: a pure function of (account, market, is_long), read once
        self._keys: dict[tuple[str, int, bool], int] = {}
        self._unreadable: set[tuple[int, bool]] = set()  # sides whose state reverts (logged once)

    # ------------------------------------------------------------ lifecycle

    def startup(self) -> None:
        self.token_scale = int(self.chain.call(self.chain.risk_engine.functions.token_scale()))
        head = self.follower.sync()
        tracked = sum(len(s) for s in self.follower.open.values())
        self.metrics.set("adl_positions_tracked", tracked)
        self.log(
            "adl_ready",
            account=self.chain.account.address,
            markets=self.markets,
            head=head,
            positions=tracked,
        )

    def shutdown(self) -> None:
        self.log("adl_stopped", cursor=self.follower.cursor)

    def tick(self) -> None:
        """Follow new events, then deleverage every triggered side, at most
        `adl_max_per_tick` transactions in all."""
        self.follower.sync()
        self.metrics.set("adl_positions_tracked", sum(len(s) for s in self.follower.open.values()))
        budget = self.settings.adl_max_per_tick
        for name, market in self.markets.items():
            for is_long in (True, False):
                if budget <= 0:
                    return
                budget -= self._side(name, market, is_long, budget)

    # ------------------------------------------------------------ one side

    def _side(self, name: str, market: int, is_long: bool, budget: int) -> int:
        """Deleverage one side while it is triggered; return the transactions sent."""
        side = "long" if is_long else "short"
        state = self.read_state(market, is_long)
        if state is None:
            return 0
        self.metrics.set(
            f"adl_pnl_factor_bps_{name}_{side}", min(state.pnl_factor_bps, MAX_GAUGE_BPS)
        )
        if not state.triggered:
            return 0
        side_state, candidates = self.snapshot(market, is_long)
        ranked = rank(candidates, self.token_scale)
        forecast = plan(side_state, candidates, max_steps=budget)
        planned = {step.candidate.key: step.size for step in forecast.steps}
        self.log(
            "adl_triggered",
            market=name,
            side=side,
            pnl_factor_bps=state.pnl_factor_bps,
            trigger_bps=state.trigger_bps,
            target_bps=state.target_bps,
            pnl_usd=state.pnl_usd,
            pool_usd=state.pool_usd,
            candidates=len(ranked),
            plan=[[s.candidate.account, s.score, s.size] for s in forecast.steps],
            plan_stop=forecast.stop,
        )
        sent = 0
        for c in ranked:
            if sent >= budget:
                self.log("adl_budget_spent", market=name, side=side, sent=sent)
                break
            fields = {
                "market": name,
                "side": side,
                "account": c.account,
                "key": f"0x{c.key:064x}",
                "score": c.score,
            }
            try:
                limit = int(
                    self.chain.call(
                        self.chain.risk_engine.functions.adl_size_limit(c.account, market, is_long)
                    )
                )
            except CALL_ERRORS as exc:
                self.log.warn("adl_stop", reason=f"size limit unreadable: {exc}", **fields)
                break
            if limit == 0:  # the target is reached for this position: the walk ends (as in plan)
                self.log(
                    "adl_stop", reason="size limit 0", pnl_factor_bps=state.pnl_factor_bps, **fields
                )
                break
            self.log(
                "adl_decision",
                size=limit,
                planned_size=planned.get(c.key),
                position_size=c.size,
                pnl=c.pnl,
                pnl_factor_bps=state.pnl_factor_bps,
                **fields,
            )
            fn = self.chain.risk_engine.functions.auto_deleverage(c.account, market, is_long, limit)
            result = self.chain.send(fn, "auto_deleverage", **fields, size=limit)
            if result.status == -1:  # refused by the simulation: the side moved; re-rank next tick
                self.metrics.inc("adl_refused")
                self.log.warn("adl_refused", reason=result.reason, **fields)
                break
            sent += 1
            self.metrics.inc("adl_sent")
            if result.status != 1:
                self.metrics.inc("adl_failed")
                self.log.error(
                    "adl_failed",
                    status=result.status,
                    tx=result.tx_hash,
                    reason=result.reason,
                    **fields,
                )
                break
            self.metrics.inc("adl_confirmed")
            after = self.read_state(market, is_long)
            if after is None:
                break
            self.log(
                "adl_closed",
                tx=result.tx_hash,
                block=result.block,
                pnl_factor_before_bps=state.pnl_factor_bps,
                pnl_factor_after_bps=after.pnl_factor_bps,
                triggered=after.triggered,
                **fields,
            )
            state = after
            self.metrics.set(
                f"adl_pnl_factor_bps_{name}_{side}", min(state.pnl_factor_bps, MAX_GAUGE_BPS)
            )
            if not state.triggered:
                self.log(
                    "adl_done",
                    market=name,
                    side=side,
                    pnl_factor_bps=state.pnl_factor_bps,
                    sent=sent,
                )
                break
        return sent

    # ------------------------------------------------------------ reads

    def read_state(self, market: int, is_long: bool) -> AdlState | None:
        """The side's `adl_state`, or None when it reverts (a stale price: nothing can be
        deleveraged until a price keeper pushes; logged once until it reads again)."""
        try:
            raw = self.chain.call(self.chain.risk_engine.functions.adl_state(market, is_long))
        except CALL_ERRORS as exc:
            if (market, is_long) not in self._unreadable:
                self._unreadable.add((market, is_long))
                self.log.warn(
                    "adl_state_unreadable", market=market, is_long=is_long, reason=str(exc)
                )
            return None
        self._unreadable.discard((market, is_long))
        return _adl_state(_named(self.chain.risk_engine, "adl_state", raw))

    def snapshot(self, market: int, is_long: bool) -> tuple[SideState, list[Candidate]]:
        """The side and its profitable positions as the RiskEngine sees them now, every read
        at one block: `adl_state`, each position and its values at the fresh close price,
        the contract's score."""
        chain, perp, risk = self.chain, self.chain.perp, self.chain.risk_engine
        block = chain.head()
        state = _adl_state(
            _named(risk, "adl_state", chain.call(risk.functions.adl_state(market, is_long), block))
        )
        risk_config = _named(
            chain.configurator,
            "risk_configs",
            chain.call(chain.configurator.functions.risk_configs(market), block),
        )
        config = _named(
            chain.configurator,
            "configs",
            chain.call(chain.configurator.functions.configs(market), block),
        )
        side_state = SideState(
            pnl=state.pnl_usd,
            pool=state.pool_usd,
            trigger_bps=state.trigger_bps,
            target_bps=state.target_bps,
            traders_cap_bps=int(risk_config["max_pnl_factor_for_traders_bps"]),
            position_fee_bps=int(config["position_fee_bps"]),
            token_scale=self.token_scale,
            insurance_cut_bps=int(risk_config["insurance_cut_bps"]),
        )
        price = int(chain.call(perp.functions.close_price(market, is_long), block))
        candidates: list[Candidate] = []
        for account in self.follower.accounts(market, is_long):
            pos = _named(
                perp,
                "get_position",
                chain.call(perp.functions.get_position(account, market, is_long), block),
            )
            if int(pos["size_usd"]) == 0:
                continue
            values = _named(
                perp,
                "position_values",
                chain.call(perp.functions.position_values(account, market, is_long, price), block),
            )
            if int(values["pnl"]) <= 0:
                continue  # ADL closes only profitable positions
            candidates.append(
                Candidate(
                    key=self._key(account, market, is_long),
                    account=account,
                    size=int(pos["size_usd"]),
                    collateral=int(pos["collateral"]),
                    pnl=int(values["pnl"]),
                    borrowing_fee=int(values["borrowing_fee"]),
                    funding=int(values["funding"]),
                    score=int(
                        chain.call(risk.functions.adl_score(account, market, is_long), block)
                    ),
                )
            )
        return side_state, candidates

    def _key(self, account: str, market: int, is_long: bool) -> int:
        ref = (account, market, is_long)
        if ref not in self._keys:
            raw = self.chain.call(self.chain.perp.functions.position_key(account, market, is_long))
            self._keys[ref] = int.from_bytes(bytes(raw), "big")
        return self._keys[ref]


def _adl_state(s: dict[str, Any]) -> AdlState:
    return AdlState(
        int(s["pnl_usd"]),
        int(s["pool_usd"]),
        int(s["pnl_factor_bps"]),
        int(s["max_pnl_factor_for_adl_bps"]),
        int(s["min_pnl_factor_after_adl_bps"]),
        bool(s["triggered"]),
    )


def _named(contract: Any, function: str, value: Any) -> dict[str, Any]:
    """A struct returned by a view, by its ABI field names (web3 returns a bare tuple)."""
    for item in contract.abi:
        if item.get("type") == "function" and item.get("name") == function:
            fields = item["outputs"][0]["components"]
            return {f["name"]: v for f, v in zip(fields, value)}
    raise KeyError(f"{function} is not in the ABI")
