"""A stress scenario on a fresh devnet of its own (a free loopback port; a running
`ape run devnet --keep` is left alone):

    ape run scenario crash            # a 30 % drop over minutes into a long-heavy crowd
    ape run scenario squeeze          # a 25 % rally into crowded shorts, past the ADL trigger
    ape run scenario funding-spike    # open interest 90 % long for hours of chain time
    ape run scenario oracle-lag       # the price keeper pauses, the price gaps
    ape run scenario keeper-outage    # the liquidator is down during a drop
    ape run scenario replay --csv path.csv
    ape run scenario crash --seed 7 --short

Each is deterministic for its seed. The report (HTML with plots, series.json, the keepers'
logs) goes to reports/<scenario>-seed<seed>-<time>/ (--out to change); the exit code is 0
whatever the verdict says (1 with --strict when the verdict fails).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from perpool.devnet import free_port
from perpool.sim.main import RunRequest, run
from perpool.sim.scenarios import SCENARIOS

VERDICT_FAILED_EXIT = 1


@click.command()
@click.argument("name", type=click.Choice([*SCENARIOS, "replay"]))
@click.option("--seed", default=1, show_default=True, help="Same seed, same price path and crowd.")
@click.option("--short", is_flag=True, help="CI mode: a small crowd and fewer steps.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="replay: the price path (timestamp,market,price).")
@click.option("--crowd", type=int, help="Traders in the crowd (default: 300, or 24 with --short).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="The report folder.")
@click.option("--port", type=int, default=0, help="Loopback port for Anvil (default: a free one).")
@click.option("--keep", is_flag=True, help="Keep the devnet and its keepers running afterwards.")
@click.option("--strict", is_flag=True, help="Exit 1 when the verdict fails.")
def cli(name: str, seed: int, short: bool, csv_path: Path | None, crowd: int | None, out: Path | None,
        port: int, keep: bool, strict: bool) -> None:
    """Run one stress scenario on a fresh devnet and write its report."""
    from perpool.sim.main import REPORTS_DIR

    port = port or free_port()
    folder = out
    if folder is None:
        from datetime import datetime, timezone

        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        folder = REPORTS_DIR / f"{name}-seed{seed}-{stamp}"
    request = RunRequest(port, keep, name, seed, short, csv_path, crowd, folder,
                         folder / "deployment.json", folder / "anvil")
    code = run(request)
    if code:
        sys.exit(code)
    if strict:
        series = json.loads((folder / "series.json").read_text())
        if not series["verdict"]["passed"]:
            sys.exit(VERDICT_FAILED_EXIT)
