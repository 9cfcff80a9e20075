"""The main job: a local perpool devnet in one command.

    ape run devnet                       # Anvil, deploy, LPs and a crowd of 300 traders, the
                                         # keepers, the default scenario (crash), a report
    ape run devnet --short               # the CI mode: a small crowd and a short scenario
    ape run devnet --keep                # ... then keep the devnet and its keepers until Ctrl-C
    ape run devnet --scenario squeeze    # another scenario (see `ape run scenario --help`)
    ape run devnet --scenario none --keep  # deploy only: no crowd, no keepers

Anvil listens on 127.0.0.1:8545 (--port to change); the deployment is written to
deployments/local.json for keepers, scripts and `ape console`; the report to
reports/<scenario>-seed<seed>-<time>/index.html (--out to change).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from perpool.sim.main import RunRequest, run
from perpool.sim.scenarios import DEFAULT_SCENARIO, SCENARIOS

CHOICES = [*SCENARIOS, "replay", "none"]


@click.command()
@click.option("--port", default=8545, show_default=True, help="Loopback port for Anvil.")
@click.option("--keep", is_flag=True, help="Keep the devnet (and its keepers) running until Ctrl-C or SIGTERM.")
@click.option("--scenario", type=click.Choice(CHOICES), default=DEFAULT_SCENARIO, show_default=True,
              help="The market scenario to run; `none` only deploys.")
@click.option("--seed", default=1, show_default=True, help="The scenario's seed (same seed, same path and crowd).")
@click.option("--short", is_flag=True, help="CI mode: a small crowd and a short scenario.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The price path for --scenario replay (timestamp,market,price).")
@click.option("--crowd", type=int, help="Traders in the crowd (default: 300, or 24 with --short).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="The report folder.")
@click.option("--deployment-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the deployment (default deployments/local.json).")
def cli(port: int, keep: bool, scenario: str, seed: int, short: bool, csv_path: Path | None,
        crowd: int | None, out: Path | None, deployment_out: Path | None) -> None:
    """Start Anvil, deploy perpool, run a market scenario with a crowd and the keepers."""
    code = run(RunRequest(port, keep, scenario, seed, short, csv_path, crowd, out, deployment_out, None))
    if code:
        sys.exit(code)
