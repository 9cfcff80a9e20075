"""The README's first command in its CI mode (`ape run devnet --short`): Anvil, the deploy,
the crowd, the keepers and the default scenario to the end, a summary and the report, then
everything stopped; and the same run interrupted with Ctrl-C part-way."""

from __future__ import annotations

import json
import signal
import socket
import time

from perpool.devnet import free_port
from perpool.sim.scenarios import DEFAULT_SCENARIO, build
from sim_tools import Run, processes_with


def _closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_devnet_short__runs_the_default_scenario_reports_and_stops(tmp_path):
    port, folder = free_port(), tmp_path / "report"
    run = Run("devnet", "--short", "--port", str(port), "--out", str(folder),
              "--deployment-out", str(tmp_path / "local.json"))
    assert run.finish() == 0, run.output[-4000:]
    out = run.output
    sc = build(DEFAULT_SCENARIO, 1, True)
    assert f"scenario {DEFAULT_SCENARIO} (seed 1, short)" in out
    assert f"ran {len(sc.steps)} steps" in out
    assert "verdict: " in out and f"report: {folder / 'index.html'}" in out
    assert "devnet stopped" in out
    series = json.loads((folder / "series.json").read_text())
    assert series["scenario"] == DEFAULT_SCENARIO and len(series["steps"]) == len(sc.steps) + 1
    # the report ends with the verdict the summary printed
    html = (folder / "index.html").read_text()
    overall = "PASS" if series["verdict"]["passed"] else "FAIL"
    assert f"verdict: {overall}" in out and html.rfind(overall) > html.rfind("<img")
    assert _closed(port)
    assert processes_with(str(folder)) == []


def test_devnet_short__ctrl_c_mid_run__stops_everything_and_keeps_a_partial_report(tmp_path):
    port, folder = free_port(), tmp_path / "report"
    run = Run("devnet", "--short", "--port", str(port), "--out", str(folder),
              "--deployment-out", str(tmp_path / "local.json"))
    run.wait_for("scenario ")
    deadline = time.monotonic() + 300
    while not processes_with(str(folder)):  # the keepers are up: the run is in its steps
        assert time.monotonic() < deadline and run.process.poll() is None, run.output[-3000:]
        time.sleep(0.5)
    time.sleep(3)
    code = run.stop(signal.SIGINT, timeout=120)
    assert code == 130, run.output[-3000:]
    assert "devnet stopped" in run.output
    assert _closed(port)
    assert processes_with(str(folder)) == []
    series = json.loads((folder / "series.json").read_text())
    assert series["interrupted"] is True
    assert "interrupted after" in run.output
