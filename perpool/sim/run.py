"""One simulation run on a deployed devnet: settings, LPs, crowd, keepers, the scenario's
steps, then the events, the verdict and the report.

    result = simulate(url, deployment_path, scenario, out_dir, on_step=...)

A step: the keeper actions it names (an outage stops a keeper), the crowd's orders, a jump
of chain time to the step's end, then the keepers' turn - the driver waits until the price
keeper has pushed the step's prices and the order keeper, the liquidator and the ADL keeper
have nothing left to do (each only while it is running; a keeper that does not catch up
within `CATCH_UP_S` is noted as a stall, never waited for forever) - and a sample.
"""

from __future__ import annotations

import json
import signal
import time
from fractions import Fraction
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from perpool.sim import measure
from perpool.sim.crowd import EXECUTED, Crowd
from perpool.sim.feed import PriceFeed
from perpool.sim.keepers import Keepers
from perpool.sim.node import Node, SimError
from perpool.sim.scenarios import Scenario, step_times, write_price_csv

CATCH_UP_S = 20.0  # wall seconds the driver waits for the keepers after a step
POLL_S = 0.25  # s between the driver's checks (each is one JSON-RPC batch of views)
SERIES_VERSION = 1


@dataclass
class Result:
    series: dict[str, Any]
    report: Path | None
    folder: Path
    keepers: Keepers
    stalls: list[str] = field(default_factory=list)
    interrupted: int | None = None  # the signal that ended the run early, if any

    @property
    def passed(self) -> bool:
        return bool(self.series["verdict"]["passed"])


class Simulation:
    def __init__(self, url: str, deployment: Path, scenario: Scenario, folder: Path) -> None:
        self.scenario, self.folder = scenario, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.node = Node(url, deployment)
        self.markets = dict(self.node.chain.deployment.markets)
        missing = [m for m in scenario.markets if m not in self.markets]
        if missing:
            raise SimError(f"the deployment lists no market {', '.join(missing)}")
        self.feed = PriceFeed()
        self.keepers = Keepers(self.node, deployment, folder, self.feed.url)
        self.crowd = Crowd(self.node, scenario, self.markets)
        self.sampler = measure.Sampler(self.node, self.crowd, self.markets)
        self.steps: list[dict[str, Any]] = []
        self.stalls: list[str] = []
        self.start_block = 0
        self.rows: list[dict[str, int]] = []
        self.start_prices: dict[str, int] = {}
        self.times: list[int] = []
        self.t0 = 0

    # ------------------------------------------------------------ set-up

    def configure(self) -> None:
        """The scenario's market and risk settings, through the Configurator (the devnet's
        admin is Anvil account 0); every value is checked against the bounds there."""
        if not (self.scenario.market_overrides or self.scenario.risk_overrides):
            return
        admin = self.node.w3.eth.accounts[0]
        conf = self.node.contract("Configurator")
        for name in self.scenario.markets:
            m = self.markets[name]
            if self.scenario.market_overrides:
                fields = _fields(conf, "configs")
                config = dict(zip(fields, conf.functions.configs(m).call()))
                config.update(self.scenario.market_overrides)
                self.node.send(conf.functions.set_market_config(m, tuple(config[f] for f in fields)), admin)
            if self.scenario.risk_overrides:
                fields = _fields(conf, "risk_configs")
                risk = dict(zip(fields, conf.functions.risk_configs(m).call()))
                risk.update(self.scenario.risk_overrides)
                self.node.send(conf.functions.set_risk_config(m, tuple(risk[f] for f in fields)), admin)

    def setup(self) -> None:
        self.start_block = self.node.head()
        self.configure()
        self.keepers.authorise()
        self.crowd.seed_pool()
        self.crowd.fund_traders()
        t0 = self.node.now()
        oracle = self.node.contract("Oracle")
        start = {m: oracle.functions.price_data(self.markets[m]).call()[0] for m in self.scenario.markets}
        self.start_prices = start
        self.rows = write_price_csv(self.scenario, start, t0, self.folder / "prices.csv")
        self.t0 = t0
        self.times = step_times(self.scenario, t0)
        self.feed.publish(start, t0)
        self.keepers.start_all()
        self.crowd.open_all()
        self.steps.append(self.sampler.sample(-1, "start"))

    # ------------------------------------------------------------ steps

    def step(self, k: int) -> None:
        step = self.scenario.steps[k]
        for action in step.actions:
            self.keepers.apply(action)
        self.crowd.refresh()
        self.crowd.churn(self.rows[k - 1] if k else self.start_prices)  # the latest path price, WAD
        self.times[k] = self.node.warp(self.times[k])
        self.feed.publish(self.rows[k], self.times[k])
        self.catch_up(k)
        self.crowd.refresh()
        self.steps.append(self.sampler.sample(k, step.label))

    def catch_up(self, k: int) -> None:
        """Wait for the running keepers to finish their work for step `k`."""
        deadline = time.monotonic() + CATCH_UP_S
        oracle = self.node.contract("Oracle")
        ids = [self.markets[m] for m in self.scenario.markets]
        pending = {"prices", "orders", "liquidator", "adl"}
        while pending and time.monotonic() < deadline:
            dead = self.keepers.dead()
            if dead:
                raise SimError(f"keeper {', '.join(dead)} exited; see {self.folder}/keeper-<name>.log")
            if "prices" in pending:
                if not self.keepers.is_up("prices"):
                    pending.discard("prices")
                else:
                    seen = self.node.chain.call_many([oracle.functions.price_data(m) for m in ids])
                    if all(s[1] >= self.times[k] for s in seen):
                        pending.discard("prices")
                    else:
                        time.sleep(POLL_S)
                        continue
            if "orders" in pending:
                if not self.keepers.is_up("orders"):
                    self.crowd.refresh()
                    pending.discard("orders")
                elif not self._executable():
                    pending.discard("orders")
            if "liquidator" in pending and "orders" not in pending and (
                not self.keepers.is_up("liquidator") or not self.sampler.unhealthy()
            ):
                pending.discard("liquidator")  # asked once the fills are in (the crowd refreshed)
            if "adl" in pending and (not self.keepers.is_up("adl") or not self._adl_triggered()):
                pending.discard("adl")
            if pending:
                time.sleep(POLL_S)
        for name in sorted(pending):
            self.stalls.append(f"step {k}: the {name} keeper did not catch up within {CATCH_UP_S:g} s")

    def _executable(self) -> bool:
        orders = self.node.contract("OrderBook")
        live = [i for t in self.crowd.traders for i in (t.order_id, t.stop_id) if i is not None]
        answers = self.node.chain.call_many([orders.functions.order_status(i, True) for i in live])
        if any(not isinstance(a, Exception) and a[0] == EXECUTED for a in answers):
            return True
        self.crowd.refresh()  # the fills are in: who holds a position now
        return False

    def _adl_triggered(self) -> bool:
        risk = self.node.contract("RiskEngine")
        calls = [risk.functions.adl_state(self.markets[m], side) for m in self.scenario.markets for side in (True, False)]
        return any(not isinstance(a, Exception) and a[5] for a in self.node.chain.call_many(calls))

    # ------------------------------------------------------------ the end

    def finish(self, interrupted: bool = False) -> dict[str, Any]:
        end = self.node.head()
        events = measure.Events(self.node, self.markets, self.crowd.scale, self.start_block, end)
        events.stamp()
        # each step's liquidations, by the blocks it covers
        previous = self.start_block
        for s in self.steps:
            inside = [e for e in events.liquidations if previous < e["block"] <= s["block"]]
            s["liquidations"] = len(inside)
            s["liquidated_usd"] = sum(e["size_usd"] for e in inside)
            s["adl_count"] = sum(previous < e["block"] <= s["block"] for e in events.adl)
            previous = s["block"]
        floor = self.start_block
        latencies: list[int] = []
        for e in events.liquidations:
            first = measure.unhealthy_since(self.node, (e["account"], e["market_id"], e["is_long"]), e["block"], floor)
            e["latency_blocks"] = e["block"] - first
            latencies.append(e["latency_blocks"])
        still = []
        for t in self.sampler.unhealthy(end):
            first = measure.unhealthy_since(self.node, (t.address, self.markets[t.market], t.is_long), end + 1, floor)
            still.append({"account": t.address, "market": t.market, "is_long": t.is_long, "blocks": end + 1 - first})
        series = self.series(events, latencies, still, interrupted)
        return series

    def series(self, events: measure.Events, latencies: list[int], still: list[dict[str, Any]], interrupted: bool) -> dict[str, Any]:
        sc = self.scenario
        for e in events.liquidations:
            e.pop("market_id", None)
        verdict = judge(sc, self.steps, events, latencies, still)
        return {
            "version": SERIES_VERSION,
            "scenario": sc.name,
            "seed": sc.seed,
            "mode": "short" if sc.short else "full",
            "chain_id": self.node.chain.chain_id,
            "markets": sc.markets,
            "interrupted": interrupted,
            "settings": sc.settings(),
            "start_block": self.start_block,
            "start_time": self.t0,  # chain time the path starts at (step k ends at start_time + its dt's)
            "steps": self.steps,
            "path": [{m: str(p) for m, p in row.items()} for row in self.rows],
            "liquidations": events.liquidations,
            "cascades": measure.cascades(self.steps[1:]),
            "adl": events.adl,
            "bad_debt": events.bad_debt,
            "keeper_latency_blocks": latencies,
            "unhealthy_at_end": still,
            "keeper_events": self.keepers.events,
            "stalls": self.stalls,
            "crowd_refusals": self.crowd.refused[:50],
            "totals": {
                "liquidations": len(events.liquidations),
                "liquidated_usd": sum(e["size_usd"] for e in events.liquidations),
                "adl": len(events.adl),
                "bad_debt_usd": sum(e["amount_usd"] for e in events.bad_debt),
                "bad_debt_lps_usd": sum(e["pool_usd"] for e in events.bad_debt),
                "orders_placed": self.crowd.placed,
                "orders_executed": len(events.executed),
                "orders_cancelled": len(events.cancelled),
                "price_pushes": len(events.pushes),
                "max_open_positions": max((s["open_positions"] for s in self.steps), default=0),
            },
            "verdict": verdict,
        }


def judge(
    sc: Scenario,
    steps: list[dict[str, Any]],
    events: measure.Events,
    latencies: list[int],
    still: list[dict[str, Any]],
) -> dict[str, Any]:
    """The three verdicts, decided on integers from the chain."""
    priced = [s["share_price_wad"] for s in steps if s["share_price_wad"] is not None]
    first, last = (priced[0], priced[-1]) if priced else (0, 0)
    loss_pct = (first - last) * 100 / first if first else 0.0  # for the text only
    lp_ok = (first - last) * 100 <= Fraction(str(sc.max_lp_loss_pct)) * first
    from_lps = sum(e["from_lps"] for e in events.bad_debt)
    covered = sum(e["insurance_usd"] for e in events.bad_debt)
    worst = max([*latencies, *(s["blocks"] for s in still)], default=0)
    checks = [
        {
            "name": "lp_loss",
            "passed": lp_ok,
            "detail": f"LP share price {-loss_pct:+.2f} % (limit -{sc.max_lp_loss_pct:g} %)",
        },
        {
            "name": "insurance",
            "passed": from_lps == 0,
            "detail": (
                f"insurance fund never exhausted: it covered ${covered:,.2f} of bad debt"
                if from_lps == 0
                else f"insurance fund exhausted: LPs absorbed ${sum(e['pool_usd'] for e in events.bad_debt):,.2f} of bad debt"
            ),
        },
        {
            "name": "unhealthy",
            "passed": worst <= sc.max_unhealthy_blocks,
            "detail": (
                f"longest unhealthy stretch {worst} blocks (limit {sc.max_unhealthy_blocks})"
                + (f"; {len(still)} still unhealthy at the end" if still else "")
            ),
        },
    ]
    return {"passed": all(c["passed"] for c in checks), "checks": checks}


def _fields(contract: Any, fn_name: str) -> list[str]:
    for item in contract.abi:
        if item.get("type") == "function" and item.get("name") == fn_name:
            return [c["name"] for c in item["outputs"][0]["components"]]
    raise SimError(f"{fn_name} not in the ABI")


def simulate(
    url: str,
    deployment: Path,
    scenario: Scenario,
    folder: Path,
    on_step: Callable[[int], None] | None = None,
    keep_keepers: bool = False,
) -> Result:
    """Run `scenario` on the devnet at `url`, write the report into `folder`, and return
    the result. The keepers are stopped at the end unless `keep_keepers` (then the price
    keeper switches to a random walk from the last prices); on KeyboardInterrupt the
    report covers the steps done."""
    from perpool.sim.report import write_report

    sim = Simulation(url, deployment, scenario, folder)
    interrupted: int | None = None
    done = False
    try:
        sim.setup()
        for k in range(len(scenario.steps)):
            sim.step(k)
            if on_step:
                on_step(k)
        done = True
    except KeyboardInterrupt as exc:
        interrupted = getattr(exc, "signum", signal.SIGINT)
    finally:
        if not (done and keep_keepers):
            sim.keepers.stop_all()
        if done and keep_keepers:
            sim.keepers.switch_source("random")
        sim.feed.close()
    series = sim.finish(interrupted is not None)
    (folder / "series.json").write_text(json.dumps(series, indent=1))
    report = write_report(series, folder)
    return Result(series, report, folder, sim.keepers, sim.stalls, interrupted)
