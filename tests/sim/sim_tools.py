"""Running `ape run devnet|scenario` as a subprocess and reading its devnet afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from perpool.deployments import ROOT

APE = str(Path(sys.executable).parent / "ape")
START_TIMEOUT_S = 600  # a short scenario takes ~1-2 min; a loaded CI machine more


class Run:
    """A command whose output lines are collected by a thread (no pipe ever blocks it)."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ)
        env.pop("APE_FOUNDRY_HOST", None)
        self.process = subprocess.Popen(
            [APE, "run", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                if any(text in line for line in self.lines):
                    return
                raise AssertionError(f"exited {self.process.returncode} before {text!r}:\n{self.output[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout} s:\n{self.output[-4000:]}")
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def finish(self, timeout: float = START_TIMEOUT_S) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


def processes_with(text: str) -> list[int]:
    """Live processes whose environment mentions `text` (a run's folder: its keepers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if text.encode() in environ and "State:\tZ" not in status:
            found.append(int(entry.name))
    return found
