"""The devnet command (`ape run devnet`): a real run end to end, and its clear refusals."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from perpool import devnet
from perpool.deployments import ROOT

APE = str(Path(sys.executable).parent / "ape")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_devnet(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("APE_FOUNDRY_HOST", None)
    return subprocess.run(
        [APE, "run", "devnet", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_devnet__scenario_none__deploys_prints_and_stops():
    port = _free_port()
    result = _run_devnet("--scenario", "none", "--port", str(port))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"perpool devnet on http://127.0.0.1:{port}" in result.stdout
    assert '"Perp"' in result.stdout and '"Vault"' in result.stdout
    assert "devnet stopped" in result.stdout
    with socket.socket() as sock:  # Anvil is gone
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_devnet__port_taken__refuses_with_a_clear_message():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = _run_devnet("--scenario", "none", "--port", str(port))
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1 is taken" in result.stdout + result.stderr


def test_check_port_free__listening_socket__raises():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(devnet.DevnetError, match="is taken"):
            devnet.check_port_free("127.0.0.1", sock.getsockname()[1])


def test_check_no_previous_devnet__live_pid__raises(tmp_path, monkeypatch):
    pid_file = tmp_path / "anvil.pid"
    pid_file.write_text(str(os.getpid()))  # a process that is certainly alive
    monkeypatch.setattr(devnet, "PID_FILE", pid_file)
    with pytest.raises(devnet.DevnetError, match="previous devnet is still running"):
        devnet.check_no_previous_devnet()
    assert pid_file.exists()


def test_check_no_previous_devnet__stale_pid__cleans_up(tmp_path, monkeypatch):
    pid_file = tmp_path / "anvil.pid"
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    pid_file.write_text(str(proc.pid))  # exited: stale
    monkeypatch.setattr(devnet, "PID_FILE", pid_file)
    devnet.check_no_previous_devnet()
    assert not pid_file.exists()


def test_find_anvil__not_installed__says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(devnet, "ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(devnet.DevnetError, match="npm ci"):
        devnet.find_anvil()
