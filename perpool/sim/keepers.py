"""The real keepers, as `perpool-keeper` processes the simulation starts, stops and restarts
(a scenario's outage is a SIGTERM; a restart resumes from the keeper's persisted cursor).

Each keeper has its own Anvil dev key (no two processes share a nonce) and its own state
folder and log file under the run's folder. The price keeper reads the scenario's prices
from the driver's loopback feed (`perpool.sim.feed`); in `--keep` mode it switches to the
random walk from the last prices, so the devnet stays alive for interactive use.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from eth_account import Account

from perpool.sim.node import Node

DEV_MNEMONIC = "test test test test test test test test test test test junk"  # Anvil's, public
KEEPER_ACCOUNT_INDEX = {"prices": 5, "orders": 6, "liquidator": 7, "adl": 8}  # Anvil dev accounts
POLL_INTERVAL_S = 0.2
STOP_TIMEOUT_S = 10.0

Account.enable_unaudited_hdwallet_features()


def dev_key(index: int) -> str:
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key.hex()


@dataclass
class KeeperProcess:
    name: str
    process: subprocess.Popen
    log: IO[str]


@dataclass
class Keepers:
    """The four keepers of one run. `events` records every start and stop with its block."""

    node: Node
    deployment: Path
    folder: Path
    feed_url: str
    running: dict[str, KeeperProcess] = field(default_factory=dict)
    events: list[dict[str, object]] = field(default_factory=list)
    exit_codes: dict[str, list[int]] = field(default_factory=dict)
    source: str = "http"

    def authorise(self) -> None:
        """The price keeper becomes an Oracle updater and the order keeper an OrderBook
        keeper (sent as the devnet's admin, Anvil account 0)."""
        admin = self.node.w3.eth.accounts[0]
        oracle, orders = self.node.contract("Oracle"), self.node.contract("OrderBook")
        for name in ("prices", "orders"):
            address = Account.from_key(dev_key(KEEPER_ACCOUNT_INDEX[name])).address
            self.node.send(oracle.functions.set_updater(address, True), admin)
            if name == "orders":
                self.node.send(orders.functions.set_keeper(address, True), admin)

    def env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PERPOOL_")}
        env.update(
            PERPOOL_RPC_URLS=self.node.url,
            PERPOOL_DEPLOYMENT=str(self.deployment),
            PERPOOL_PRIVATE_KEY=dev_key(KEEPER_ACCOUNT_INDEX[name]),
            PERPOOL_METRICS_PORT="0",
            PERPOOL_STATE_DIR=str(self.folder / "state" / name),
            PERPOOL_POLL_INTERVAL_S=str(POLL_INTERVAL_S),
            PERPOOL_RPC_BACKOFF_S="0.2",
            PERPOOL_SOURCE=self.source,
            PERPOOL_HTTP_URL=self.feed_url,
            PERPOOL_HTTP_TIMEOUT_S="2",
            PERPOOL_HEARTBEAT_S="1",  # every newer quote of the path is pushed
            PERPOOL_SPLIT_LARGE_MOVES="true",  # a gap beyond the jump bound is stepped
            PERPOOL_MAX_SOURCE_AGE_S="86400",  # a step's quote stays valid until the next one
            PERPOOL_WALK_JUMP_BPS="0",
        )
        return env

    def start(self, name: str) -> None:
        if name in self.running:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / f"keeper-{name}.log").open("a")
        process = subprocess.Popen(
            [sys.executable, "-m", "keepers.cli", name],
            env=self.env(name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches the driver, which stops them in order
        )
        self.running[name] = KeeperProcess(name, process, log)
        self._record(name, "start")

    def stop(self, name: str) -> None:
        keeper = self.running.pop(name, None)
        if keeper is None:
            return
        if keeper.process.poll() is None:
            keeper.process.send_signal(signal.SIGTERM)
            try:
                keeper.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                keeper.process.kill()
                keeper.process.wait()
        keeper.log.close()
        self.exit_codes.setdefault(name, []).append(keeper.process.returncode)
        self._record(name, "stop")

    def start_all(self) -> None:
        for name in KEEPER_ACCOUNT_INDEX:
            self.start(name)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def is_up(self, name: str) -> bool:
        keeper = self.running.get(name)
        return keeper is not None and keeper.process.poll() is None

    def dead(self) -> list[str]:
        """Keepers that should be running but exited on their own."""
        return [n for n, k in self.running.items() if k.process.poll() is not None]

    def switch_source(self, source: str) -> None:
        """Restart the price keeper on another source (`random` after the scenario)."""
        self.stop("prices")
        self.source = source
        self.start("prices")

    def apply(self, action: str) -> None:
        verb, _, name = action.partition(":")
        if verb == "stop":
            self.stop(name)
        elif verb == "start":
            self.start(name)
        else:
            raise ValueError(f"unknown keeper action {action!r}")

    def _record(self, name: str, action: str) -> None:
        try:
            block = self.node.head()
            time = self.node.now()
        except Exception:  # noqa: BLE001 (the node may already be gone at shutdown)
            block = time = None
        self.events.append({"keeper": name, "action": action, "block": block, "time": time})
