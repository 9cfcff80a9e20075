"""`ape console` with perpool's extras, driven as a person would: a devnet up, a script piped
to the console's stdin, and what it prints checked (the console exits 0 even when a cell
fails, so every cell prints a marker the test looks for)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perpool.deployments import ROOT

APE = str(Path(sys.executable).parent / "ape")

SCRIPT = """
me = accounts.test_accounts[3]
fund(me, 300_000)
print("DEPOSITED", deposit(me, 200_000) > 0)
print("MARKETS", sorted(markets))
show_market("ETH")
open_position(me, "ETH", True, 1_000, 5_000)
show_position(me, "ETH", True)
push_price("ETH", price("ETH") * 1.01)
p = position(me, "eth", True)
print("PNL_POSITIVE", p["pnl"] > 0, "LIQ_BELOW_MARK", 0 < p["liquidation_price"] < p["mark_price"])
close_position(me, "ETH", True)
print("CLOSED", position(me, "ETH", True)["size"] == 0)
print("RATES", sorted(rates("BTC")))
print("ORDERS_AT", orders.address == perpool.orders.address)
open_position(me, "BTC", False, 2_000, 10_000)
print("SHORT", position(me, "BTC", False)["size"])
vault.set_lp_orders_only(True, sender=accounts.test_accounts[0])
lp2 = accounts.test_accounts[4]
fund(lp2, 10_000)
before = orders.next_order_id()
print("ORDER_DEPOSIT", deposit(lp2, 5_000) == vault.balanceOf(lp2) > 0, orders.next_order_id() == before + 1)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def devnet_url(tmp_path_factory):
    """`ape run devnet --scenario none --keep` (deploy only) on a free port, stopped with SIGTERM afterwards."""
    tmp_path = tmp_path_factory.mktemp("devnet")
    port = _free_port()
    env = dict(os.environ)
    env.pop("APE_FOUNDRY_HOST", None)
    log = (tmp_path / "devnet.log").open("w")
    proc = subprocess.Popen(
        [APE, "run", "devnet", "--scenario", "none", "--keep", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while "devnet running" not in (tmp_path / "devnet.log").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "devnet.log").read_text()[-2000:]
        time.sleep(0.5)
    yield f"http://127.0.0.1:{port}"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert "devnet stopped" in (tmp_path / "devnet.log").read_text()


def _console(url: str, script: str) -> str:
    env = dict(os.environ, APE_FOUNDRY_HOST=url)
    result = subprocess.run(
        [APE, "console", "--network", "ethereum:local:foundry"],
        cwd=ROOT, env=env, input=script, capture_output=True, text=True, timeout=180,
    )
    return result.stdout + result.stderr


def test_console__extras__trade_read_and_push_from_the_prompt(devnet_url):
    out = _console(devnet_url, SCRIPT)
    assert "perpool: local.json loaded" in out
    assert "DEPOSITED True" in out
    assert "MARKETS ['BTC', 'ETH']" in out
    assert "market ETH (id 1): price $3,000.00, direct fills on" in out
    assert "long ETH: size $5,000.00" in out and "liquidation price $" in out
    assert "PNL_POSITIVE True LIQ_BELOW_MARK True" in out
    assert "CLOSED True" in out
    assert "RATES ['borrowing_per_hour', 'borrowing_per_year', 'funding_long_per_hour', 'funding_short_per_hour']" in out
    assert "ORDERS_AT True" in out
    assert "SHORT 10000.0" in out
    assert "ORDER_DEPOSIT True True" in out  # LP orders only: the deposit went through an order
    assert "Traceback" not in out and "Error" not in out, out[-3000:]


def test_console__no_deployment_for_the_network__a_hint_not_a_crash(devnet_url, tmp_path):
    env_script = "print('NAMES', 'perp' in dir())\n"
    env = dict(os.environ, APE_FOUNDRY_HOST=devnet_url, PERPOOL_DEPLOYMENT=str(tmp_path / "none.json"))
    result = subprocess.run(
        [APE, "console", "--network", "ethereum:local:foundry"],
        cwd=ROOT, env=env, input=env_script, capture_output=True, text=True, timeout=180,
    )
    out = result.stdout + result.stderr
    assert "perpool: no deployment file at" in out and "make devnet ARGS=--keep" in out
    assert "NAMES False" in out
