"""The daemon loop, logs and metrics, without a chain."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import urllib.request

from keepers.lifecycle import Runner
from keepers.log import Log
from keepers.metrics import Metrics


class Recorder:
    """A keeper that records its lifecycle and fails on the ticks it is told to."""

    def __init__(self, name: str = "recorder", fail_on: set[int] | None = None) -> None:
        self.name = name
        self.calls: list[str] = []
        self.ticks = 0
        self.fail_on = fail_on or set()

    def startup(self) -> None:
        self.calls.append("startup")

    def tick(self) -> None:
        self.ticks += 1
        self.calls.append("tick")
        if self.ticks in self.fail_on:
            raise RuntimeError(f"tick {self.ticks} failed")

    def shutdown(self) -> None:
        self.calls.append("shutdown")


def _runner(keepers, budget: int = 3, stream=None) -> tuple[Runner, Metrics, io.StringIO]:
    out = stream or io.StringIO()
    metrics = Metrics()
    return Runner(keepers, Log("test", out), metrics, 0.001, budget), metrics, out


def test_run__bounded__starts_ticks_and_shuts_down_every_keeper():
    a, b = Recorder("a"), Recorder("b")
    runner, _, out = _runner([a, b])
    assert runner.run(max_ticks=3) == 0
    assert a.calls == b.calls == ["startup", "tick", "tick", "tick", "shutdown"]
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert events[:2] == ["started", "started"] and events[-1] == "stopped"


def test_run__a_failing_tick__logged_and_the_loop_goes_on():
    keeper = Recorder(fail_on={2})
    runner, metrics, out = _runner([keeper])
    assert runner.run(max_ticks=4) == 0
    assert keeper.ticks == 4 and metrics.get("tick_failures") == 1
    failed = [json.loads(x) for x in out.getvalue().splitlines() if '"tick_failed"' in x]
    assert failed[0]["error"] == "RuntimeError: tick 2 failed" and failed[0]["level"] == "error"


def test_run__failures_exhaust_the_budget__stops_with_code_1_after_shutdown():
    keeper = Recorder(fail_on=set(range(1, 100)))
    runner, metrics, _ = _runner([keeper], budget=3)
    assert runner.run(max_ticks=50) == 1
    assert keeper.ticks == 3 and keeper.calls[-1] == "shutdown"
    assert metrics.get("tick_failures") == 3


def test_run__sigterm__finishes_the_tick_and_stops_cleanly():
    keeper = Recorder()
    runner, _, out = _runner([keeper])
    runner.install_signals()
    timer = threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        assert runner.run(max_seconds=5) == 0
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert keeper.calls[-1] == "shutdown" and keeper.calls.count("startup") == 1
    stopping = [json.loads(x) for x in out.getvalue().splitlines() if '"stopping"' in x]
    assert stopping[0]["why"] == "SIGTERM"


def test_log__big_ints_and_bytes__exact_and_json():
    out = io.StringIO()
    Log("k", out)("sent", amount=2**255, tx=b"\x01\x02", items=(1, 2))
    record = json.loads(out.getvalue())
    assert record["amount"] == str(2**255) and record["tx"] == "0x0102" and record["items"] == [1, 2]
    assert (record["keeper"], record["event"], record["level"]) == ("k", "sent", "info")


def test_metrics__served_on_loopback__prometheus_text():
    metrics = Metrics()
    metrics.inc("liquidations_sent", 2)
    metrics.set("last_block", 123)
    port = metrics.serve(0)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        metrics.close()
    assert body == "perpool_keeper_last_block 123\nperpool_keeper_liquidations_sent 2\n"


class FlakyStart(Recorder):
    """A keeper whose start-up fails `failures` times (an RPC error while rebuilding state)."""

    def __init__(self, failures: int) -> None:
        super().__init__("flaky")
        self.failures = failures

    def startup(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("rpc down")
        super().startup()


def test_run__startup_fails_then_succeeds__retried_and_runs():
    keeper = FlakyStart(failures=2)
    runner, metrics, out = _runner([keeper], budget=3)
    assert runner.run(max_ticks=2) == 0
    assert metrics.get("startup_failures") == 2 and keeper.calls == ["startup", "tick", "tick", "shutdown"]
    assert [json.loads(x)["event"] for x in out.getvalue().splitlines()].count("startup_failed") == 2


def test_run__startup_keeps_failing__stops_with_code_1_at_the_budget():
    keeper = FlakyStart(failures=100)
    runner, metrics, _ = _runner([keeper], budget=3)
    assert runner.run(max_ticks=2) == 1
    assert metrics.get("startup_failures") == 3 and keeper.ticks == 0
