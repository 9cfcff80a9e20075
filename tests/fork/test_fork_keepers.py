"""The keepers against the fork's RPC URL with the upstream's deployment file, signing with a
key made a keeper on the fork only: `perpool-keeper prices` as an operator runs it (a
subprocess, stopped by SIGTERM), and the order keeper's Python classes filling a trader's
order with a price they push. The upstream sees none of it."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

import pytest

from keepers.chain import Chain
from keepers.log import Log
from keepers.metrics import Metrics
from keepers.orders import OrderKeeper
from keepers.pusher import PricePusher
from keepers.settings import load_settings

from fork_scene import (
    FEE,
    MARKET_INCREASE,
    MAX_UINT,
    SEPOLIA,
    WAD,
    assert_upstream_untouched,
    deal,
    deposit,
    ensure_prices,
)

SECONDS = 30  # an upper bound on each wait: a tick or two is enough


class _Events:
    """The JSON log lines of a keeper subprocess's stderr, read on a thread."""

    def __init__(self, stream: Any) -> None:
        self.records: list[dict] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            if line.startswith("{"):
                with self._changed:
                    self.records.append(json.loads(line))
                    self._changed.notify_all()

    def wait_for(self, match: Callable[[dict], bool], timeout: float = SECONDS) -> dict:
        with self._changed:
            found = self._changed.wait_for(lambda: next((r for r in self.records if match(r)), None), timeout)
        assert found, f"no matching keeper event in {timeout} s: {self.records[-10:]}"
        return found

    def close(self) -> None:
        self._thread.join(timeout=10)


def test_fork__perpool_keeper_prices_pushes_on_the_fork_only(
    fork, upstream, fork_protocol, chain, fork_keeper, tmp_path
):
    watched = [fork_keeper.address]
    before = upstream.state(watched)
    ensure_prices(fork_protocol, chain, fork_keeper)  # the pusher's random walk starts from them
    markets = sorted(upstream.deployment.markets.values())
    stored = {m: fork_protocol.oracle.price_timestamp(m) for m in markets}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERPOOL_")}
    env.update(
        PERPOOL_PRIVATE_KEY=fork_keeper.private_key,  # off a local chain the keeper needs a key
        PERPOOL_STATE_DIR=str(tmp_path / "state"),
        PERPOOL_METRICS_PORT="0",
        PERPOOL_POLL_INTERVAL_S="0.2",
        PERPOOL_HEARTBEAT_S="1",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "keepers.cli", "prices", "--rpc-url", fork.url,
         "--deployment", str(upstream.deployment_path)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        events = _Events(process.stderr)
        start = events.wait_for(lambda r: r["event"] == "start")
        mined = events.wait_for(lambda r: r["event"] == "mined" and r["action"] == "set_prices")
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the keeper did not stop within {SECONDS} s of SIGTERM; its last records: {events.records[-8:]}")
        assert code == 0
        events.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert (start["chain_id"], start["rpc"], start["account"]) == (SEPOLIA, fork.url, fork_keeper.address)
    assert mined["status"] == 1
    assert events.records[-1]["event"] == "stopped" and events.records[-1]["code"] == 0
    for market in markets:  # every market pushed, on the fork
        assert fork_protocol.oracle.price_timestamp(market) > stored[market]
    hashes = assert_upstream_untouched(upstream, before, watched, fork.url, fork.block)
    assert mined["tx"] in hashes


def test_fork__order_keeper_fills_a_traders_order_on_the_fork(
    fork, upstream, fork_protocol, chain, fork_keeper, new_account, tmp_path
):
    lp, trader = new_account(), new_account()
    watched = [lp.address, trader.address, fork_keeper.address]
    before = upstream.state(watched)
    p, market = fork_protocol, fork_protocol.markets["ETH"]
    ensure_prices(p, chain, fork_keeper)
    deposit(p, chain, lp, 100_000)
    deal(chain.provider, p.token, trader, 10_000)
    p.token.approve(p.vault, MAX_UINT, sender=trader)
    size = 5_000 * WAD
    order_id = p.orders.create_order(
        market, MARKET_INCREASE, True, 1_000 * 10**6, size, MAX_UINT, 0, FEE, sender=trader
    ).return_value

    settings = load_settings(
        rpc_urls=[fork.url], deployment=upstream.deployment_path, private_key=fork_keeper.private_key,
        state_dir=tmp_path / "state", metrics_port=0, poll_interval_s=0.05, rpc_backoff_s=0.05,
        receipt_timeout_s=SECONDS, orders_push_prices=True,
    )
    out = io.StringIO()
    log, metrics = Log("orders", stream=out), Metrics()
    client = Chain(settings, log, metrics)
    keeper = OrderKeeper(
        client, settings, log, metrics, prices=PricePusher.from_settings(client, settings, log, metrics),
        start_prices=True,
    )
    keeper.startup()
    deadline = time.monotonic() + SECONDS
    while p.perp.get_position(trader, market, True).size_usd == 0 and time.monotonic() < deadline:
        keeper.tick()
        time.sleep(settings.poll_interval_s)
    keeper.shutdown()

    records = [json.loads(line) for line in out.getvalue().splitlines()]
    ready = next(r for r in records if r["event"] == "orders_ready")
    assert ready["keeper"] is True and ready["pushes_prices"] is True  # the role granted on the fork
    executed = [r for r in records if r["event"] == "order_executed"]
    assert [r["order"] for r in executed] == [order_id]
    assert p.perp.get_position(trader, market, True).size_usd == size
    (sent,) = [r for r in records if r["event"] == "mined" and r["action"] == "execute_orders_with_prices"]
    (fill,) = chain.get_receipt(sent["tx"]).decode_logs(p.orders.OrderExecuted)
    assert (fill.order_id, fill.owner, fill.executor) == (order_id, trader.address, fork_keeper.address)
    hashes = assert_upstream_untouched(upstream, before, watched, fork.url, fork.block)
    assert {r["tx"] for r in records if r["event"] == "mined"} <= set(hashes)
