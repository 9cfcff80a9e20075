"""Benchmark the liquidator (issue #5) on its own Anvil; not part of CI.

    ape run bench_liquidator --positions 1000      # 200, 1000, 10000, ...

Starts Anvil on a free loopback port with a raised block gas limit, deploys perpool with a
$100M pool and writes a deployment file to a temp dir; opens N positions with real
transactions, `--crowd` per transaction through contracts/test/TestCrowd.vy (one trader
contract per position, since Perp keys positions by account); then pushes one price
(ETH -2 %, BTC +2 %: the Oracle's jump bound; one `set_prices`) that makes 2 % of them unhealthy, and runs the real
liquidator (`keepers.liquidator.Liquidator` under `keepers.lifecycle.Runner`, signing with
Anvil dev account 9) from a cold start until every unhealthy position is liquidated.

The scene: position i is on side i % 4 (ETH long, ETH short, BTC long, BTC short) with
$100 to $500 of collateral. i % 100 in {0, 3} (ETH long, BTC short: the losing sides) are
at 40x, whose liquidation price is ~1.8 % away (docs/perp.md: fixed = collateral - fees -
maintenance; at 40x the open and close fees take 4 % and maintenance 20 % of the
collateral, so (1 - 0.04 - 0.04 - 0.2) / 40 = 1.8 %); i % 100 in {1, 2} are 40x on the
winning sides (healthy); every other position is at 2x to 15x, whose nearest liquidation
price is ~6 % away (15x: (1 - 0.015 - 0.015 - 0.075) / 15 = 6 %), beyond the 2 % move and
the Oracle's 0.3 % spread.

Measured: wall time and blocks from the price push until every unhealthy position is
liquidated; the minimum number of blocks the block gas limit allows for them (liquidations x
gas per liquidation in the keeper's batches / block gas limit, rounded up); positions the
index produced as candidates on the push tick and on an idle tick, against N; the time to
rebuild the book from events; the keeper's Python memory (tracemalloc peak of a second
cold start, so tracing slows nothing timed). Anvil automines one block per transaction
unless `--block-time` sets interval mining after the positions are open.
"""

from __future__ import annotations

import io
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable, NamedTuple

import click

from perpool.deployments import ABI_DIR
from perpool.devnet import CHAIN_ID, find_anvil, rpc, stop_process

WAD = 10**18
UNIT = 10**6  # token units per dollar (the 6-decimal test token)
MAX_BATCH = 256  # Perp.MAX_BATCH: positions per liquidate_batch
POOL_USD = 100_000_000
ETH_PRICE, BTC_PRICE = 3_000 * WAD, 60_000 * WAD
MOVE_BPS = 200  # the one push: ETH -2 %, BTC +2 % (the Oracle's default jump bound)
DOOMED_LEVERAGE = 40
LEVERAGES = (2, 3, 5, 8, 10, 15)
#: Anvil dev account 9: the keeper's key (Ape deploys and trades with account 0).
KEEPER_KEY = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"
START_TIMEOUT_S = 15.0


# ---------------------------------------------------------------- Anvil


class OwnAnvil:
    """An Anvil this script started (not the devnet's: no pid file, a free port)."""

    def __init__(self, process: subprocess.Popen, url: str, log_path: Path) -> None:
        self.process, self.url, self.log_path = process, url, log_path

    def stop(self) -> None:
        stop_process(self.process)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_anvil(gas_limit: int, workdir: Path) -> OwnAnvil:
    """Anvil on a free loopback port, as perpool/devnet.py starts it, with `gas_limit`."""
    port = free_port()
    log_path = workdir / "anvil.log"
    process = subprocess.Popen(
        [find_anvil(), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(CHAIN_ID),
         "--gas-limit", str(gas_limit)],
        stdout=log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    anvil = OwnAnvil(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise click.ClickException(f"Anvil exited at start (code {process.returncode}); see {log_path}")
        try:
            if int(rpc(anvil.url, "eth_chainId"), 16) == CHAIN_ID:
                return anvil
        except OSError:
            time.sleep(0.1)
    anvil.stop()
    raise click.ClickException(f"Anvil did not answer on {anvil.url}; see {log_path}")


# ---------------------------------------------------------------- the scene


class Order(NamedTuple):
    market: int
    is_long: bool
    collateral: int  # token units
    size: int  # WAD USD
    doomed: bool  # unhealthy after the push, by construction


def orders_for(n: int, eth: int, btc: int) -> list[Order]:
    sides = [(eth, True), (eth, False), (btc, True), (btc, False)]
    out = []
    for i in range(n):
        market, is_long = sides[i % 4]
        collateral_usd = 100 + 50 * (i % 9)
        r = i % 100
        leverage = DOOMED_LEVERAGE if r < 4 else LEVERAGES[(i // 4) % len(LEVERAGES)]
        out.append(Order(market, is_long, collateral_usd * UNIT, collateral_usd * leverage * WAD, r in (0, 3)))
    return out


def push(protocol: Any, chain: Any, updater: Any, prices: dict[int, int]) -> Any:
    """Push `prices` in the next block, its timestamp pinned after the head and the stored
    observations (the Oracle wants a newer one); return the receipt."""
    stored = max(protocol.oracle.price_timestamp(m) for m in prices)
    ts = max(chain.pending_timestamp, chain.blocks.head.timestamp + 1, stored + 1)
    chain.pending_timestamp = ts
    return protocol.oracle.set_prices(list(prices), list(prices.values()), ts, sender=updater)


# ---------------------------------------------------------------- the probe


class Detection(NamedTuple):
    """One `find_targets` call: candidates the index produced, how many the health function
    confirmed, its wall time."""

    candidates: int
    liquidatable: int
    seconds: float


class Probe:
    """Wraps the real Liquidator for Runner: times its cold start, counts the index's
    candidates per price check, and stops the runner a few ticks after `done()`.
    (Plain classes here: `ape run` loads scripts outside sys.modules, where dataclasses fail.)"""

    name = "liquidator"

    def __init__(self, liquidator: Any, done: Callable[[], bool], stop: Callable[[], None],
                 extra_ticks: int = 3) -> None:
        self.liquidator, self.done, self.stop, self.extra_ticks = liquidator, done, stop, extra_ticks
        self.rebuild_s = 0.0
        self.detections: list[Detection] = []
        self.done_at: float | None = None
        self.ticks_after_done = 0
        self._current = [0, 0]

    def startup(self) -> None:
        t0 = time.perf_counter()
        self.liquidator.startup()
        self.rebuild_s = time.perf_counter() - t0
        for side in self.liquidator.index.sides.values():
            self._wrap_side(side)
        find = self.liquidator.find_targets

        def timed_find() -> list:
            self._current = [0, 0]
            t = time.perf_counter()
            targets = find()
            self.detections.append(Detection(self._current[0], self._current[1], time.perf_counter() - t))
            return targets

        self.liquidator.find_targets = timed_find

    def _wrap_side(self, side: Any) -> None:
        candidates, liquidatable = side.candidates, side.liquidatable

        def counted_candidates(price: int, now: Any) -> list:
            keys = candidates(price, now)
            self._current[0] += len(keys)
            return keys

        def counted_liquidatable(price: int, now: Any) -> list:
            found = liquidatable(price, now)
            self._current[1] += len(found)
            return found

        side.candidates, side.liquidatable = counted_candidates, counted_liquidatable

    def tick(self) -> None:
        self.liquidator.tick()
        if self.done_at is None and self.done():
            self.done_at = time.perf_counter()
        elif self.done_at is not None:
            self.ticks_after_done += 1
            if self.ticks_after_done >= self.extra_ticks:
                self.stop()

    def shutdown(self) -> None:
        self.liquidator.shutdown()


# ---------------------------------------------------------------- the run


def keeper_parts(url: str, deployment: Path, state_dir: Path, batch_size: int, log_stream: Any) -> tuple[Any, ...]:
    from keepers.chain import Chain
    from keepers.liquidator import Liquidator
    from keepers.log import Log
    from keepers.metrics import Metrics
    from keepers.settings import load_settings

    settings = load_settings(
        rpc_urls=[url], deployment=deployment, private_key=KEEPER_KEY, state_dir=state_dir,
        metrics_port=0, poll_interval_s=0.05, batch_size=batch_size, rpc_backoff_s=0.05,
    )
    log, metrics = Log("liquidator", stream=log_stream), Metrics()
    chain = Chain(settings, log, metrics)
    return settings, log, metrics, chain, Liquidator(chain, settings, log, metrics)


def keeper_receipts(w3: Any, perp: Any, keeper: str, first: int, last: int) -> list[tuple[int, int, int]]:
    """(block, gas used, positions liquidated) of the keeper's Perp transactions."""
    from web3.logs import DISCARD

    out = []
    for number in range(first, last + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block.transactions:
            if tx["from"].lower() != keeper.lower() or (tx["to"] or "").lower() != str(perp.address).lower():
                continue
            receipt = w3.eth.get_transaction_receipt(tx["hash"])
            count = len(perp.events.Liquidation().process_receipt(receipt, errors=DISCARD))
            out.append((number, int(receipt["gasUsed"]), count))
    return out


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


@click.command()
@click.option("--positions", "n", default=1000, show_default=True, help="Positions to open.")
@click.option("--crowd", default=200, show_default=True, help="Positions opened per transaction (max 256).")
@click.option("--batch-size", default=256, show_default=True, help="The liquidator's batch_size (max 256).")
@click.option("--gas-limit", default=300_000_000, show_default=True, help="Anvil's block gas limit.")
@click.option("--block-time", default=0.0, show_default=True,
              help="Interval mining (s) from the price push on; 0 keeps automine (a block per transaction).")
@click.option("--timeout", default=600.0, show_default=True, help="Give the liquidator at most this long (s).")
@click.option("--keeper-log", type=click.Path(path_type=Path), default=None,
              help="Write the keeper's JSON log lines here (default: discarded).")
def cli(n: int, crowd: int, batch_size: int, gas_limit: int, block_time: float, timeout: float,
        keeper_log: Path | None) -> None:
    """Benchmark the liquidator against N positions on a fresh Anvil."""
    from ape import accounts, chain, networks, project
    from ape.logging import logger
    from web3 import Web3

    from perpool.deploy import deploy_protocol
    from perpool.deployments import Deployment, save

    if not 1 <= crowd <= 256:
        raise click.BadParameter("--crowd must be 1 to 256")
    logger.set_level("WARNING")  # not a line per transaction
    workdir = Path(tempfile.mkdtemp(prefix="bench_liquidator_"))
    anvil = start_anvil(gas_limit, workdir)
    log_stream: Any = keeper_log.open("w") if keeper_log else io.StringIO()
    try:
        os.environ["APE_FOUNDRY_HOST"] = anvil.url
        with networks.parse_network_choice("ethereum:local:foundry"):
            deployer = accounts.test_accounts[0]
            t_setup = time.perf_counter()
            token = deployer.deploy(project.TestToken, "Test USD", "tUSD", 6)
            protocol = deploy_protocol(project, deployer, token, updaters=(deployer,), chain=chain)
            token.mint(deployer, POOL_USD * UNIT, sender=deployer)
            token.approve(protocol.vault.address, 2**256 - 1, sender=deployer)
            protocol.vault.deposit(POOL_USD * UNIT, 0, deployer, sender=deployer)
            deployment = save(Deployment(
                network="local", chain_id=chain.chain_id, deploy_block=protocol.deploy_block,
                contracts={"Token": str(token.address), **protocol.addresses()},
                markets=protocol.markets, feeds={k: str(f.address) for k, f in protocol.feeds.items()},
            ), workdir / "local.json")

            eth, btc = protocol.markets["ETH"], protocol.markets["BTC"]
            orders = orders_for(n, eth, btc)
            crowd_contract = deployer.deploy(project.TestCrowd, token.address, protocol.perp.address,
                                              protocol.vault.address)
            token.mint(crowd_contract.address, sum(o.collateral for o in orders), sender=deployer)
            open_gas = 0
            for start in range(0, n, crowd):
                push(protocol, chain, deployer, {eth: ETH_PRICE, btc: BTC_PRICE})  # keep it fresh
                chunk = orders[start:start + crowd]
                tx = crowd_contract.open_positions(
                    [(o.market, o.is_long, o.collateral, o.size) for o in chunk], sender=deployer)
                open_gas += int(tx.gas_used)
                click.echo(f"opened {start + len(chunk)}/{n} (gas {tx.gas_used:,} in block {tx.block_number})",
                           err=True)
            setup_s = time.perf_counter() - t_setup

            w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 60}))
            perp_w3 = w3.eth.contract(address=str(protocol.perp.address),
                                      abi=json.loads((ABI_DIR / "Perp.json").read_text()))
            # the scene's positions, from the events (as the keeper will see them)
            doomed: set[tuple[str, int, bool]] = set()
            opened = 0
            head = w3.eth.block_number
            for first in range(protocol.deploy_block, head + 1, 5_000):
                for e in perp_w3.events.PositionUpdate().get_logs(from_block=first, to_block=min(first + 4_999, head)):
                    a = e["args"]
                    opened += 1
                    leverage = a["size_usd"] // (a["collateral"] * 10**12) if a["collateral"] else 0
                    losing = (a["market"] == eth and a["is_long"]) or (a["market"] == btc and not a["is_long"])
                    if losing and leverage >= DOOMED_LEVERAGE - 5:
                        doomed.add((Web3.to_checksum_address(a["account"]), int(a["market"]), bool(a["is_long"])))
            expected = sum(o.doomed for o in orders)
            if opened != n or len(doomed) != expected:
                raise click.ClickException(f"scene: {opened} positions opened ({n} wanted), {len(doomed)} doomed "
                                           f"({expected} wanted)")

            if block_time > 0:
                w3.provider.make_request("evm_setIntervalMining", [block_time])
            move = {eth: ETH_PRICE * (10_000 - MOVE_BPS) // 10_000, btc: BTC_PRICE * (10_000 + MOVE_BPS) // 10_000}
            receipt = push(protocol, chain, deployer, move)
            t_push, push_block = time.perf_counter(), int(receipt.block_number)

            # the keeper: a cold start (empty state dir), the book rebuilt from events
            settings, log, metrics, kchain, liquidator = keeper_parts(
                anvil.url, deployment, workdir / "state", batch_size, log_stream)
            from keepers.lifecycle import Runner

            runner = Runner([], log, metrics, settings.poll_interval_s, settings.failure_budget)
            probe = Probe(liquidator, done=lambda: metrics.get("liquidations_confirmed") >= expected,
                          stop=lambda: runner.stop("benchmark done"))
            runner.keepers = [probe]
            t_keeper = time.perf_counter()
            code = runner.run(max_seconds=timeout)
            if probe.done_at is None:
                raise click.ClickException(
                    f"the liquidator did not finish within {timeout:.0f} s (exit {code}): "
                    f"{metrics.get('liquidations_confirmed'):.0f}/{expected} liquidated")
            wall_push = probe.done_at - t_push
            wall_keeper = probe.done_at - t_keeper

            # what happened on chain
            head = w3.eth.block_number
            txs = keeper_receipts(w3, perp_w3, liquidator.account, push_block + 1, head)
            batches = [t for t in txs if t[2] > 0]
            liquidated_keys = {
                (Web3.to_checksum_address(e["args"]["account"]), int(e["args"]["market"]), bool(e["args"]["is_long"]))
                for e in perp_w3.events.Liquidation().get_logs(from_block=push_block, to_block=head)
            }
            total_liq = sum(t[2] for t in batches)
            gas_per_liq = sum(t[1] for t in batches) / total_liq
            last_block = max(t[0] for t in batches)
            blocks_used = last_block - push_block
            liq_blocks = len({t[0] for t in batches})
            min_blocks = max(1, math.ceil(expected * gas_per_liq / gas_limit))
            min_txs = math.ceil(expected / MAX_BATCH)

            push_tick = next(d for d in probe.detections if d.liquidatable > 0)
            idle = probe.detections[-1]

            # memory: a second cold start under tracemalloc (nothing timed here)
            _, _, _, _, second = keeper_parts(anvil.url, deployment, workdir / "state2", batch_size, io.StringIO())
            tracemalloc.start()
            second.startup()
            second.find_targets()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()

        rows = [
            ("positions (N)", f"{n:,}"),
            ("unhealthy after the push", f"{expected:,} ({expected / n:.1%})"),
            ("liquidated (by the keeper / all)", f"{total_liq:,} / {len(liquidated_keys):,}"
                                                 f"{'' if liquidated_keys == doomed else '  MISMATCH'}"),
            ("setup (deploy + open N)", f"{fmt_s(setup_s)}, {open_gas / n:,.0f} gas per position opened"),
            ("book rebuild from events", fmt_s(probe.rebuild_s)),
            ("wall time push -> all liquidated", f"{fmt_s(wall_push)} (keeper start -> done {fmt_s(wall_keeper)})"),
            ("blocks push -> all liquidated", f"{blocks_used} ({len(batches)} batches in {liq_blocks} blocks,"
                                              f" {'automine' if block_time == 0 else f'{block_time:g} s blocks'})"),
            ("gas per liquidation (in batches)", f"{gas_per_liq:,.0f}"),
            ("minimum blocks (gas limit)", f"{min_blocks} (block gas limit {gas_limit:,}; "
                                           f"{min_txs} txs at the {MAX_BATCH}-position batch cap)"),
            ("checked on the push tick", f"{push_tick.candidates:,} candidates of {n:,} ({push_tick.candidates / n:.2%}),"
                                         f" {push_tick.liquidatable:,} liquidatable, {fmt_s(push_tick.seconds)}"),
            ("checked on an idle tick", f"{idle.candidates:,} candidates, {fmt_s(idle.seconds)}"),
            ("keeper memory (tracemalloc peak)", f"{peak / 2**20:.1f} MiB (cold start + one check)"),
        ]
        width = max(len(r[0]) for r in rows)
        click.echo("")
        for name, value in rows:
            click.echo(f"{name:<{width}}  {value}")
        slack = math.isqrt(n) + 1
        blocks_ok = blocks_used <= min_blocks + 1
        sublinear = push_tick.candidates <= push_tick.liquidatable + slack and idle.candidates <= slack
        verdict = "PASS" if (blocks_ok and sublinear and liquidated_keys == doomed) else "FAIL"
        click.echo(
            f"\nverdict: {verdict}: done in {blocks_used} blocks against a minimum of {min_blocks} + 1 "
            f"({'ok' if blocks_ok else 'over'}); detection checked {push_tick.candidates} for {push_tick.liquidatable} "
            f"liquidatable, {idle.candidates} when idle, of N = {n} "
            f"({'sub-linear' if sublinear else 'not sub-linear'}: within sqrt(N) of the liquidatable set)"
            f"{'' if liquidated_keys == doomed else '; the liquidated set differs from the unhealthy set'}"
        )
    finally:
        anvil.stop()
        if keeper_log:
            log_stream.close()
        click.echo(f"Anvil stopped (work dir {workdir})", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
