"""`perpool-keeper` as an operator runs it: a subprocess against the test Anvil, stopped by
SIGTERM, and the clear refusals at start (exit code 2 with a one-line reason)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from conftest import KEEPER_KEY


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keepers.cli", *args], env=env, capture_output=True, text=True,
        timeout=timeout,
    )


def _env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERPOOL_")}
    env.update({"PERPOOL_STATE_DIR": str(tmp_path / "state"), "PERPOOL_METRICS_PORT": "0"})
    env.update(extra)
    return env


def test_cli__all_keepers__run_until_sigterm_then_exit_0(rpc_url, deployment_file, tmp_path, protocol):
    env = _env(tmp_path, PERPOOL_PRIVATE_KEY=KEEPER_KEY, PERPOOL_POLL_INTERVAL_S="0.2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "keepers.cli", "all", "--rpc-url", rpc_url, "--deployment", str(deployment_file)],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        lines: list[dict] = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(json.loads(line))
            if sum(1 for x in lines if x["event"] == "started") == 4:
                break
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines += [json.loads(x) for x in rest.splitlines() if x.startswith("{")]
    assert proc.returncode == 0
    events = [x["event"] for x in lines]
    assert {"prices", "liquidator", "adl", "orders"} <= {x.get("keeper") for x in lines if x["event"] == "started"}
    ready = [x for x in lines if x["event"] == "orders_ready"]
    assert ready and ready[0]["keeper"] is True and ready[0]["pushes_prices"] is True  # the pusher's source
    assert events[-1] == "stopped" and lines[-1]["code"] == 0
    stopping = [x for x in lines if x["event"] == "stopping"]
    assert stopping and stopping[0]["why"] == "SIGTERM"


def test_cli__bad_setting__exit_2_with_the_reason(tmp_path):
    result = _run(["liquidator"], _env(tmp_path, PERPOOL_BATCH_SIZE="0"))
    assert result.returncode == 2
    assert "batch_size" in result.stderr and "greater than 0" in result.stderr


def test_cli__unreachable_rpc__exit_2_with_the_reason(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = _env(tmp_path, PERPOOL_RPC_RETRIES="0")
    result = _run(["prices", "--rpc-url", f"http://127.0.0.1:{port}"], env)
    assert result.returncode == 2
    assert "perpool-keeper: no RPC answers at" in result.stderr


def test_cli__deployment_for_another_chain__exit_2_with_the_reason(rpc_url, deployment_file, tmp_path):
    data = json.loads(deployment_file.read_text())
    data["chain_id"] = 11155111
    other = tmp_path / "sepolia.json"
    other.write_text(json.dumps(data))
    env = _env(tmp_path, PERPOOL_PRIVATE_KEY=KEEPER_KEY)
    result = _run(["adl", "--rpc-url", rpc_url, "--deployment", str(other)], env)
    assert result.returncode == 2
    assert "is for chain 11155111, the RPC serves 31337" in result.stderr


def test_cli__orders_batch_above_the_contracts_64__exit_2_with_the_reason(tmp_path):
    result = _run(["orders"], _env(tmp_path, PERPOOL_ORDER_BATCH_SIZE="65"))
    assert result.returncode == 2
    assert "order_batch_size" in result.stderr and "less than or equal to 64" in result.stderr


def test_cli__unknown_command__refused_by_the_parser(tmp_path):
    result = _run(["funding"], _env(tmp_path))
    assert result.returncode == 2 and "invalid choice" in result.stderr
