"""The main job behind `ape run devnet` and `ape run scenario`: Anvil, the deploy, a
simulation with a progress bar, the summary and the report; everything stopped at the end,
on Ctrl-C and on SIGTERM (or, with `keep`, kept running until then)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import click

from perpool.deployments import ROOT
from perpool.devnet import DevnetError, start_anvil
from perpool.sim.node import SimError
from perpool.sim.scenarios import Scenario, ScenarioError, build

REPORTS_DIR = ROOT / "reports"
EXIT_BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's codes for a run a signal ended


@dataclass
class RunRequest:
    port: int
    keep: bool
    scenario: str  # a scenario name, "replay", or "none" (deploy only)
    seed: int
    short: bool
    csv_path: Path | None
    crowd: int | None
    out: Path | None
    deployment_out: Path | None
    state_dir: Path | None  # None: the devnet's own (.devnet/, one devnet at a time)


def report_folder(request: RunRequest, scenario: Scenario) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return request.out or REPORTS_DIR / f"{scenario.name}-seed{scenario.seed}-{stamp}"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: every layer stops what it runs, then the run ends with the code."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, _frame: object) -> None:
    # Ape's own SIGINT handler exits at once (sys.exit(130)), skipping the shutdown and the
    # partial report; this one unwinds through them
    raise Interrupted(signum)


def run(request: RunRequest, echo: Callable[[str], None] = click.echo) -> int:
    """Run the request; return the process exit code: 0 when done (or a kept devnet stopped
    by Ctrl-C/SIGTERM), 130 after Ctrl-C and 143 after SIGTERM during the deploy or the run."""
    from ape import networks

    from perpool.deploy import DeployError, deploy_network

    scenario = None
    if request.scenario != "none":
        try:
            scenario = build(request.scenario, request.seed, request.short, request.csv_path)
        except ScenarioError as exc:
            raise click.ClickException(str(exc)) from exc
        if request.crowd is not None:
            if request.crowd < 1:
                raise click.ClickException("--crowd must be at least 1")
            scenario = replace(scenario, crowd=replace(scenario.crowd, size=request.crowd))
    try:
        anvil = start_anvil(request.port, state_dir=request.state_dir)
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from exc
    previous = {sig: signal.signal(sig, _interrupt) for sig in EXIT_BY_SIGNAL}
    keepers = None
    kept = False  # in the --keep wait: a signal there is the normal way to stop
    code = 0
    try:
        os.environ["APE_FOUNDRY_HOST"] = anvil.url
        with networks.parse_network_choice("ethereum:local:foundry"):
            record, path = deploy_network(out=request.deployment_out)
        echo(f"perpool devnet on {anvil.url} (chain {record.chain_id})")
        echo(f"deployment written to {path}")
        if scenario is None:
            echo(record.to_json().rstrip())
        else:
            result = _simulate(anvil.url, path, scenario, request, echo)
            keepers = result.keepers if request.keep else None
            if result.interrupted is not None:
                code = EXIT_BY_SIGNAL.get(result.interrupted, EXIT_BY_SIGNAL[signal.SIGINT])
        if request.keep and code == 0:
            echo("devnet running" + (" with its keepers" if keepers else "") + ": Ctrl-C to stop")
            kept = True
            while True:
                time.sleep(0.5)
    except DeployError as exc:
        raise click.ClickException(str(exc)) from exc
    except SimError as exc:
        raise click.ClickException(f"simulation: {exc}") from exc
    except KeyboardInterrupt as exc:
        echo("stopping")
        if not kept:  # a signal during the deploy
            code = EXIT_BY_SIGNAL.get(getattr(exc, "signum", signal.SIGINT), EXIT_BY_SIGNAL[signal.SIGINT])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if keepers is not None:
            keepers.stop_all()
        anvil.stop()
        echo("devnet stopped")
    return code


def _simulate(url: str, deployment: Path, scenario: Scenario, request: RunRequest, echo: Callable[[str], None]):
    from perpool.sim.run import simulate

    folder = report_folder(request, scenario)
    echo(
        f"scenario {scenario.name} (seed {scenario.seed}, {'short' if scenario.short else 'full'}): "
        f"{scenario.summary}; {scenario.crowd.size + len(scenario.crowd.whales)} traders, "
        f"{len(scenario.steps)} steps over {scenario.duration_s / 3600:.2f} h of chain time"
    )
    with click.progressbar(length=len(scenario.steps), label="steps", show_pos=True) as bar:
        result = simulate(url, deployment, scenario, folder, on_step=lambda _k: bar.update(1), keep_keepers=request.keep)
    for line in summary(result.series):
        echo(line)
    echo(f"report: {result.report}")
    return result


def summary(series: dict) -> list[str]:
    """The lines printed after a run (the report has the rest)."""
    t = series["totals"]
    steps = series["steps"]
    if not steps:
        return [f"interrupted before the first sample; verdict: {'PASS' if series['verdict']['passed'] else 'FAIL'}"]
    first, last = steps[0], steps[-1]
    priced = [s for s in steps if s["pool_value_usd"] is not None] or [first]
    hours = (last["time"] - first["time"]) / 3600
    lines = [
        f"{'interrupted after' if series.get('interrupted') else 'ran'} {len(steps) - 1} steps, "
        f"{hours:.2f} h of chain time, blocks {series['start_block']}-{last['block']}",
        f"orders: {t['orders_placed']} placed, {t['orders_executed']} executed, {t['orders_cancelled']} cancelled; "
        f"{t['price_pushes']} price pushes; up to {t['max_open_positions']} open positions",
        f"liquidations: {t['liquidations']} (${t['liquidated_usd']:,.0f} notional), "
        f"{len(series['cascades'])} cascades; ADL: {t['adl']}; bad debt ${t['bad_debt_usd']:,.2f} "
        f"(LPs ${t['bad_debt_lps_usd']:,.2f})",
        f"pool value ${priced[0]['pool_value_usd'] or 0:,.0f} -> ${priced[-1]['pool_value_usd'] or 0:,.0f}; "
        f"LP share price {priced[0]['share_price'] or 0:.6f} -> {priced[-1]['share_price'] or 0:.6f}; "
        f"insurance ${last['insurance_usd']:,.2f}",
    ]
    if series.get("stalls"):
        lines.append(f"keeper stalls: {len(series['stalls'])} (see series.json)")
    verdict = series["verdict"]
    for check in verdict["checks"]:
        lines.append(f"  {'PASS' if check['passed'] else 'FAIL'}  {check['name']}: {check['detail']}")
    lines.append(f"verdict: {'PASS' if verdict['passed'] else 'FAIL'}")
    return lines
