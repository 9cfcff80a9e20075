"""The daemon loop shared by every keeper: startup, a tick every `poll_interval_s`, clean
shutdown on SIGINT/SIGTERM (the tick in progress finishes: a transaction in flight is
followed to its receipt for `shutdown_grace_s` at most, then recorded as abandoned, and RPC
retries stop), and a failure budget that stops a keeper which keeps
failing instead of spinning."""

from __future__ import annotations

import signal
import threading
import time
from typing import Protocol

from keepers.log import Log
from keepers.metrics import Metrics


class Keeper(Protocol):
    name: str

    def startup(self) -> None: ...

    def tick(self) -> None: ...

    def shutdown(self) -> None: ...


class Runner:
    def __init__(self, keepers: list[Keeper], log: Log, metrics: Metrics, poll_interval_s: float,
                 failure_budget: int, stopping: threading.Event | None = None) -> None:
        self.keepers, self.log, self.metrics = keepers, log, metrics
        self.poll_interval_s, self.failure_budget = poll_interval_s, failure_budget
        # shared with the chain client (`Chain.stopping`), so a tick in progress cuts its
        # waits short instead of finishing a receipt timeout
        self.stopping = stopping if stopping is not None else threading.Event()

    def install_signals(self) -> None:
        """Stop cleanly on SIGINT and SIGTERM (main thread only)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, _frame: self.stop(signal.Signals(signum).name))

    def stop(self, why: str = "stop") -> None:
        if not self.stopping.is_set():
            self.log("stopping", why=why)
        self.stopping.set()

    def run(self, max_ticks: int | None = None, max_seconds: float | None = None) -> int:
        """Run until stopped (or for a bounded time, in tests); return the exit code:
        0 after a clean stop, 1 when the failure budget ran out."""
        failures, ticks = 0, 0
        for keeper in self.keepers:
            # a start-up that fails (an RPC error while rebuilding state) is retried like a tick
            while not self.stopping.is_set():
                try:
                    keeper.startup()
                    self.log("started", keeper=keeper.name)
                    break
                except Exception as exc:  # noqa: BLE001
                    failures += 1
                    self.metrics.inc("startup_failures")
                    self.log.error("startup_failed", keeper=keeper.name, error=f"{type(exc).__name__}: {exc}",
                                   consecutive=failures)
                    if failures >= self.failure_budget:
                        self.log.error("failure_budget_exhausted", failures=failures)
                        self.log("stopped", code=1)
                        return 1
                    self.stopping.wait(self.poll_interval_s)
        failures = 0
        end = None if max_seconds is None else time.monotonic() + max_seconds
        code = 0
        try:
            while not self.stopping.is_set():
                for keeper in self.keepers:
                    if self.stopping.is_set():
                        break
                    try:
                        keeper.tick()
                        failures = 0
                    except Exception as exc:  # noqa: BLE001 (a keeper never dies of one bad tick)
                        failures += 1
                        self.metrics.inc("tick_failures")
                        self.log.error("tick_failed", keeper=keeper.name, error=f"{type(exc).__name__}: {exc}",
                                       consecutive=failures)
                        if failures >= self.failure_budget:
                            self.log.error("failure_budget_exhausted", failures=failures)
                            code = 1
                            self.stop("failure budget")
                ticks += 1
                if max_ticks is not None and ticks >= max_ticks:
                    break
                if end is not None and time.monotonic() >= end:
                    break
                self.stopping.wait(self.poll_interval_s)
        finally:
            for keeper in self.keepers:
                try:
                    keeper.shutdown()
                except Exception as exc:  # noqa: BLE001
                    self.log.error("shutdown_failed", keeper=keeper.name, error=str(exc))
            self.log("stopped", code=code)
        return code
