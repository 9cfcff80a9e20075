"""A local Anvil for the devnet: found on PATH or in node_modules/.bin, on a loopback port,
with clear errors for a missing binary, a taken port or a devnet already running."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from perpool.deployments import ROOT

STATE_DIR = ROOT / ".devnet"
PID_FILE = STATE_DIR / "anvil.pid"
LOG_FILE = STATE_DIR / "anvil.log"
CHAIN_ID = 31337
START_TIMEOUT_S = 15.0


class DevnetError(RuntimeError):
    """The devnet cannot start; the message says why and what to do."""


@dataclass
class Anvil:
    process: subprocess.Popen
    url: str
    pid_file: Path

    def stop(self) -> None:
        stop_process(self.process)
        self.pid_file.unlink(missing_ok=True)


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM (Anvil dumps its --state on it), then kill after `timeout` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def find_anvil() -> str:
    local = ROOT / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return str(local)
    found = shutil.which("anvil")
    if found:
        return found
    raise DevnetError("Anvil not found: run `npm ci` (or `make setup`) to install it into node_modules/.bin")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def check_no_previous_devnet(pid_file: Path | None = None) -> None:
    pid_file = pid_file or PID_FILE
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().strip())
    except ValueError:
        pid = 0
    if pid and _pid_alive(pid):
        raise DevnetError(
            f"a previous devnet is still running (Anvil pid {pid}); stop it with `kill {pid}` "
            "or Ctrl-C in its terminal"
        )
    pid_file.unlink(missing_ok=True)  # stale: its process is gone


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        if sock.connect_ex((host, port)) == 0:
            raise DevnetError(f"port {port} on {host} is taken: stop what listens there or pass --port")


def rpc(url: str, method: str, params: list | None = None, timeout: float = 2.0):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())["result"]


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_anvil(
    port: int, host: str = "127.0.0.1", extra_args: tuple[str, ...] = (), state_dir: Path | None = None
) -> Anvil:
    """Start Anvil on `host:port`. The devnet keeps its pid and log in `.devnet/` (so a
    second devnet is refused); a scenario run passes its own `state_dir`."""
    binary = find_anvil()
    pid_file = (state_dir / "anvil.pid") if state_dir else PID_FILE
    log_file = (state_dir / "anvil.log") if state_dir else LOG_FILE
    check_no_previous_devnet(pid_file)
    check_port_free(host, port)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    log = log_file.open("w")
    process = subprocess.Popen(
        [binary, "--host", host, "--port", str(port), "--chain-id", str(CHAIN_ID), *extra_args],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pid_file.write_text(str(process.pid))
    url = f"http://{host}:{port}"
    anvil = Anvil(process=process, url=url, pid_file=pid_file)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            anvil.stop()
            raise DevnetError(f"Anvil exited at start (code {process.returncode}); see {log_file}")
        try:
            if int(rpc(url, "eth_chainId"), 16) == CHAIN_ID:
                return anvil
        except OSError:
            time.sleep(0.1)
    anvil.stop()
    raise DevnetError(f"Anvil did not answer on {url} within {START_TIMEOUT_S:.0f} s; see {log_file}")
