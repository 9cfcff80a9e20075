"""The liquidator survives its node going away: Anvil is stopped (SIGTERM, it dumps its
state to `--state`) right after a price drop makes some positions unhealthy, and restarted a
few seconds later on the same port from that state, while `perpool-keeper liquidator` runs as
a subprocess. Pass: every unhealthy position liquidated exactly once (the `Liquidation` logs
over the whole chain), the healthy ones untouched, the keeper still running at the end and
exiting 0 on SIGTERM.

Everything runs on a private Anvil (not the conftest's): deployed by a subprocess
`ape run deploy` (as the devnet does, through APE_FOUNDRY_HOST), the scene set with plain web3
and the committed ABIs through Anvil's unlocked dev accounts (0: deployer and price updater,
2 to 7: traders); the keeper signs with dev account 9."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from web3 import Web3

from perpool.deployments import ABI_DIR, ROOT
from perpool.devnet import CHAIN_ID, find_anvil, rpc
from perpool.prices import batches

from conftest import KEEPER_KEY

WAD = 10**18
UNIT = 10**6  # token units per dollar (the 6-decimal test token)
MAX_UINT = 2**256 - 1
Key = tuple[str, int, bool]


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_anvil(port: int, state: Path, log_path: Path) -> subprocess.Popen:
    """Anvil as perpool/devnet.py starts it (loopback, chain id 31337, the default dev
    mnemonic and 10 accounts), automining, loading and dumping `state`."""
    process = subprocess.Popen(
        [find_anvil(), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(CHAIN_ID),
         "--state", str(state)],
        stdout=log_path.open("a"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, f"Anvil exited at start ({process.returncode}); see {log_path}"
        try:
            if int(rpc(url, "eth_chainId"), 16) == CHAIN_ID:
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"Anvil did not answer on {url}; see {log_path}")


def stop(process: subprocess.Popen | None, timeout: float = 15) -> int | None:
    """SIGTERM, wait, then kill: the exit code."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def wait_for(condition: Callable[[], bool], seconds: float, step: float = 0.2) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(step)
    return condition()


def log_lines(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            out.append({"event": "non-json", "text": line})
    return out


# ---------------------------------------------------------------- the scene (web3)


STEP_GAS = 300_000  # gas for one stepped set_prices sent without estimation

class Scene:
    """The deployed contracts through web3, sending from Anvil's unlocked dev accounts."""

    def __init__(self, url: str, deployment: dict) -> None:
        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
        self.accounts = self.w3.eth.accounts
        self.deployment = deployment

        def contract(name: str, abi: str | None = None) -> Any:
            return self.w3.eth.contract(address=Web3.to_checksum_address(deployment["contracts"][name]),
                                        abi=json.loads((ABI_DIR / f"{abi or name}.json").read_text()))

        self.token = contract("Token", "TestToken")
        self.vault, self.perp, self.oracle = contract("Vault"), contract("Perp"), contract("Oracle")
        self.eth, self.btc = deployment["markets"]["ETH"], deployment["markets"]["BTC"]

    def send(self, fn: Any, sender: str) -> Any:
        receipt = self.w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}), timeout=30)
        assert receipt["status"] == 1, f"reverted: {fn.fn_name}"
        return receipt

    def fund(self, account: str, usd: int) -> None:
        self.send(self.token.functions.mint(account, usd * UNIT), account)
        self.send(self.token.functions.approve(self.vault.address, MAX_UINT), account)

    def push(self, prices: dict[int, int]) -> Any:
        """Push `prices` observed at the next block's timestamp, pinned after the head and the
        stored observations (the Oracle wants a newer one, not in the future)."""
        newest = max(self.oracle.functions.price_timestamp(m).call() for m in prices)
        ts = max(int(time.time()), self.w3.eth.get_block("latest")["timestamp"] + 1, newest + 1)
        jump = self.oracle.functions.config().call()[4]  # max_jump_bps
        stored = {m: self.oracle.functions.price_data(m).call()[0] for m in prices}
        # a move beyond the Oracle's jump bound is stepped through it, one observation a
        # second, every step in one block: a running keeper sees the move whole (between
        # blocks it would liquidate the most levered positions before the scene is set)
        calls = batches(stored, prices, jump)
        if len(calls) == 1:
            self.w3.provider.make_request("evm_setNextBlockTimestamp", [ts])
            return self.send(self.oracle.functions.set_prices(*calls[0], ts), self.accounts[0])
        self.w3.provider.make_request("evm_setAutomine", [False])
        try:
            hashes = [
                self.oracle.functions.set_prices(markets, values, ts + k).transact(
                    {"from": self.accounts[0], "gas": STEP_GAS})  # estimated, a step would see the stored price
                for k, (markets, values) in enumerate(calls)
            ]
            self.w3.provider.make_request("evm_mine", [ts + len(calls) - 1])
        finally:
            self.w3.provider.make_request("evm_setAutomine", [True])
        receipts = [self.w3.eth.wait_for_transaction_receipt(h, timeout=30) for h in hashes]
        assert all(r["status"] == 1 for r in receipts), "a step of the push reverted"
        assert len({r["blockNumber"] for r in receipts}) == 1
        return receipts[-1]

    def open(self, trader: str, market: int, is_long: bool, collateral_usd: int, leverage: int) -> Key:
        self.send(self.perp.functions.increase_position(
            market, is_long, collateral_usd * UNIT, collateral_usd * leverage * WAD, MAX_UINT if is_long else 0),
            trader)
        return (Web3.to_checksum_address(trader), market, is_long)

    def position(self, key: Key) -> tuple:
        return tuple(self.perp.functions.get_position(*key).call())

    def liquidations(self, from_block: int) -> Counter[Key]:
        head = self.w3.eth.block_number
        logs = self.perp.events.Liquidation().get_logs(from_block=from_block, to_block=head)
        return Counter((Web3.to_checksum_address(e["args"]["account"]), int(e["args"]["market"]),
                        bool(e["args"]["is_long"])) for e in logs)


# ---------------------------------------------------------------- the test


def test_anvil_restart__mid_liquidation__none_missed_none_twice_no_crash(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    state, anvil_log, keeper_log = tmp_path / "anvil-state.json", tmp_path / "anvil.log", tmp_path / "keeper.log"
    deployment_path = tmp_path / "local.json"
    anvil: subprocess.Popen | None = None
    keeper: subprocess.Popen | None = None
    try:
        anvil = start_anvil(port, state, anvil_log)

        # deploy as the devnet does: `ape run deploy` against this Anvil
        env = {k: v for k, v in os.environ.items() if not k.startswith("PERPOOL_")}
        env["APE_FOUNDRY_HOST"] = url
        deploy = subprocess.run(
            ["ape", "run", "deploy", "--network", "ethereum:local:foundry", "--out", str(deployment_path)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        deployment = json.loads(deployment_path.read_text())
        scene = Scene(url, deployment)
        eth, btc = scene.eth, scene.btc
        deployer, traders = scene.accounts[0], scene.accounts[2:8]

        # LP and traders
        scene.fund(deployer, 1_000_000)
        scene.send(scene.vault.functions.deposit(1_000_000 * UNIT, 0, deployer), deployer)
        for trader in traders:
            scene.fund(trader, 100_000)
        scene.push({eth: 3_000 * WAD, btc: 60_000 * WAD})
        # ETH -8 %, BTC +8 % sinks 30x and 45x on the losing sides; 2x / 5x and the winning sides hold
        t2, t3, t4, t5, t6, t7 = traders
        plan = [
            (t2, eth, True, 30), (t3, eth, True, 45), (t4, btc, False, 30), (t5, btc, False, 45),  # doomed
            (t6, eth, True, 2), (t7, btc, False, 5), (t2, eth, False, 45), (t3, btc, True, 30),  # healthy
        ]
        keys = [scene.open(trader, market, is_long, 1_000, lev) for trader, market, is_long, lev in plan]
        first_block = int(deployment["deploy_block"])

        # the keeper, from a cold start, before the drop
        keeper_env = dict(env)
        keeper_env.update({
            "PERPOOL_PRIVATE_KEY": KEEPER_KEY, "PERPOOL_STATE_DIR": str(tmp_path / "keeper-state"),
            "PERPOOL_METRICS_PORT": "0", "PERPOOL_FAILURE_BUDGET": "10000", "PERPOOL_POLL_INTERVAL_S": "0.2",
            "PERPOOL_RPC_BACKOFF_S": "0.1", "PERPOOL_RECEIPT_TIMEOUT_S": "15",
        })
        keeper = subprocess.Popen(
            [sys.executable, "-m", "keepers.cli", "liquidator", "--rpc-url", url,
             "--deployment", str(deployment_path)],
            cwd=ROOT, env=keeper_env, stdout=keeper_log.open("w"), stderr=subprocess.STDOUT,
        )
        assert wait_for(lambda: any(x.get("event") == "started" for x in log_lines(keeper_log)), 60), \
            log_lines(keeper_log)

        # the drop, then the node goes away at once
        drop = scene.push({eth: 2_760 * WAD, btc: 64_800 * WAD})
        push_block = int(drop["blockNumber"])
        unhealthy = [k for k in keys
                     if scene.perp.functions.is_liquidatable(*k).call(block_identifier=push_block)]
        healthy = {k: scene.position(k) for k in keys if k not in unhealthy}
        assert sorted(unhealthy) == sorted(keys[:4]), "the scene's doomed positions"
        assert stop(anvil) == 0, "Anvil did not exit cleanly (its state may not be dumped)"
        anvil = None
        time.sleep(6)  # longer than Chain's retries (5 x 0.1 s doubling): a tick fails, not just a call
        assert keeper.poll() is None, "the keeper died while its node was down"

        anvil = start_anvil(port, state, anvil_log)
        assert scene.w3.eth.block_number >= push_block, "Anvil lost blocks across the restart"
        age = scene.w3.eth.get_block("latest")["timestamp"] - scene.oracle.functions.price_timestamp(eth).call()
        if age > 200:  # keep the drop's price fresh (stale after 300 s of chain time)
            scene.push({eth: 2_760 * WAD, btc: 64_800 * WAD})

        closed = lambda: all(scene.position(k)[0] == 0 for k in unhealthy)  # noqa: E731
        assert wait_for(closed, 60), f"not all liquidated: {[scene.position(k) for k in unhealthy]}"
        time.sleep(2)  # a few more ticks: nothing liquidated twice, nothing healthy touched
        assert scene.liquidations(first_block) == Counter(unhealthy)
        for key, before in healthy.items():
            assert scene.position(key) == before
        assert keeper.poll() is None, "the keeper crashed"
        code = stop(keeper, timeout=30)
        keeper = None
        assert code == 0
        lines = log_lines(keeper_log)
        assert lines[-1].get("event") == "stopped" and lines[-1].get("code") == 0
        assert any(x.get("event") == "rpc_error" for x in lines), "the keeper never saw the node go away"
    finally:
        stop(keeper, timeout=30)
        stop(anvil)
