"""The liquidator under faults, end to end on the test Anvil: RPC errors injected by a loopback
proxy (with and without a fallback URL), a transaction stuck with automine off, the keeper
stopped and restarted on its persisted state, and the RPC down for a while and back.

Pass means, for each: every position `Perp.is_liquidatable` calls unhealthy is liquidated,
none twice (counted from the `Liquidation` logs), no healthy one is touched, and the Runner
returns 0 (no crash, failure budget not exhausted). Ape opens positions and pushes prices
directly on Anvil (test accounts 0 to 7); the keeper signs with dev account 9 through web3,
through `FaultyRpcProxy` where the test says so. Every wait is bounded.

NOTE: random faults are switched on only once the keeper has started: `Runner.run` calls
`startup()` outside its failure handling, so an RPC error while the book is rebuilt ends the
run with that exception (start-up is fail-fast by design; a transient error there is not
retried beyond `Chain.retry`)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Callable

import pytest

from web3 import Web3

from keepers.chain import Chain
from keepers.lifecycle import Runner
from keepers.liquidator import Liquidator
from keepers.log import Log
from keepers.metrics import Metrics
from keepers.settings import KeeperSettings

from conftest import fund
from fault_tools import FaultyRpcProxy
from liquidator_scene import WAD, onchain, open_position, push

Key = tuple[str, int, bool]
LEVERAGES = [2, 30, 5, 45]  # 30x and 45x fall to an 8 % move against them; 2x and 5x do not
RUN_SECONDS = 45  # upper bound of one keeper run


# ---------------------------------------------------------------- scene


@pytest.fixture(scope="module")
def scene(accounts, chain, keeper, protocol) -> list[Key]:
    """16 positions: traders 0 to 3, each on ETH long, ETH short, BTC long, BTC short, at
    LEVERAGES[(trader + side) % 4], $1,000 of collateral each. Traders 4 to 7 are funded for
    positions opened later."""
    eth, btc = protocol.markets["ETH"], protocol.markets["BTC"]
    for i in range(8):
        fund(protocol, accounts[i], 100_000)
    push(protocol, chain, keeper, {eth: 3_000 * WAD, btc: 60_000 * WAD})
    sides = [(eth, True), (eth, False), (btc, True), (btc, False)]
    keys = []
    for t in range(4):
        for s, (market, is_long) in enumerate(sides):
            keys.append(open_position(protocol, accounts[t], market, is_long, 1_000, LEVERAGES[(t + s) % 4]))
    return keys


def crash(protocol: Any, chain: Any, keeper: Any) -> None:
    """ETH -8 % and BTC +8 % from $3,000 / $60,000, in two pushes each."""
    eth, btc = protocol.markets["ETH"], protocol.markets["BTC"]
    push(protocol, chain, keeper, {eth: 2_850 * WAD, btc: 62_400 * WAD})
    push(protocol, chain, keeper, {eth: 2_760 * WAD, btc: 64_800 * WAD})


def split(protocol: Any, keys: list[Key]) -> tuple[list[Key], dict[Key, tuple]]:
    """(the unhealthy keys, the healthy ones with their state), by the contract itself."""
    unhealthy = [k for k in keys if protocol.perp.is_liquidatable(*k)]
    healthy = {k: onchain(protocol, k) for k in keys if k not in unhealthy}
    return unhealthy, healthy


def split_at(protocol: Any, chain: Any, keys: list[Key]) -> tuple[list[Key], dict[Key, tuple]]:
    """`split` as of the head block, for a running keeper that may already have liquidated
    some: a position closed since `keys` were opened counts as unhealthy (the scene never
    closes one itself), the others are judged by `is_liquidatable` at the head block.

    Read once that block is below the head (an empty block mined after it): Anvil (1.7.1)
    answers an `eth_call` for its head block that races the mining of the next one with
    the next block's state and the asked block's timestamp, and with the keeper's
    liquidation in that next block Perp's `block.timestamp - <the market's last accrual>`
    underflows: `is_liquidatable` reverted with no reason ("Transaction failed.") in one
    CI run. A block below the head is answered from its own state and timestamp."""
    block = chain.provider.web3.eth.block_number  # the node's latest block, asked directly
    chain.mine()
    unhealthy, healthy = [], {}
    for k in keys:
        state = protocol.perp.get_position(*k, block_id=block)
        if int(state.size_usd) == 0 or protocol.perp.is_liquidatable(*k, block_id=block):
            unhealthy.append(k)
        else:
            healthy[k] = (int(state.size_usd), int(state.size_tokens), int(state.collateral),
                          int(state.borrow_index), int(state.funding_index))
    return unhealthy, healthy


def all_closed(protocol: Any, keys: list[Key]) -> Callable[[], bool]:
    return lambda: all(protocol.perp.get_position(*k).size_usd == 0 for k in keys)


def liquidated(protocol: Any, chain: Any, from_block: int) -> Counter[Key]:
    """How many times each position was liquidated from `from_block` on (Ape, not the proxy)."""
    logs = protocol.perp.Liquidation.range(from_block, chain.provider.web3.eth.block_number + 1)
    return Counter((str(e.account), int(e.market), bool(e.is_long)) for e in logs)


def assert_outcome(protocol: Any, chain: Any, from_block: int, unhealthy: list[Key],
                   healthy: dict[Key, tuple]) -> None:
    """Every unhealthy position liquidated exactly once, the healthy ones untouched."""
    assert unhealthy, "the scene must leave something to liquidate"
    assert liquidated(protocol, chain, from_block) == Counter(unhealthy)
    for key, state in healthy.items():
        assert onchain(protocol, key) == state


def wait_for(condition: Callable[[], bool], seconds: float, step: float = 0.1) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(step)
    return condition()


class StopWhen:
    """A keeper that stops its runner a few ticks after `done()` first holds, so a late
    duplicate send would still be seen."""

    name = "stop_when"

    def __init__(self, done: Callable[[], bool], runner: Runner, extra_ticks: int = 5) -> None:
        self.done, self.runner, self.extra_ticks, self.seen = done, runner, extra_ticks, 0

    def startup(self) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def tick(self) -> None:
        if self.seen or self.done():
            self.seen += 1
        if self.seen > self.extra_ticks:
            self.runner.stop("scenario done")


class Background:
    """A liquidator's Runner in a thread; `stop()` stops it and returns its exit code."""

    def __init__(self, settings: KeeperSettings, log: Log, metrics: Metrics) -> None:
        self.chain = Chain(settings, log, metrics)
        self.liquidator = Liquidator(self.chain, settings, log, metrics)
        self.runner = Runner([self.liquidator], log, metrics, settings.poll_interval_s, settings.failure_budget)
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.code = self.runner.run(max_seconds=RUN_SECONDS)

    def start(self) -> "Background":
        self.thread.start()
        return self

    def stop(self) -> int | None:
        self.runner.stop("test done")
        self.thread.join(timeout=RUN_SECONDS)
        assert not self.thread.is_alive(), "the keeper did not stop"
        return self.code


def run_until(settings: KeeperSettings, log: Log, metrics: Metrics, done: Callable[[], bool],
              seconds: float = RUN_SECONDS) -> int:
    """Run a liquidator in this thread until `done()` (plus a few ticks) or `seconds`."""
    client = Chain(settings, log, metrics)
    runner = Runner([Liquidator(client, settings, log, metrics)], log, metrics, settings.poll_interval_s,
                    settings.failure_budget)
    runner.keepers.append(StopWhen(done, runner))
    return runner.run(max_seconds=seconds)


# ---------------------------------------------------------------- 1. RPC errors


def test_faults__proxy_fails_then_goes_down__fallback_url_liquidates_each_once(
    protocol, chain, keeper, scene, settings, rpc_url, log, metrics
):
    """The first URL is a proxy failing 30 % of requests, switched down once the keeper has
    started: the keeper moves to the second URL (the real Anvil) and liquidates."""
    start_block = chain.blocks.head.number + 1
    with FaultyRpcProxy(rpc_url, seed=11) as proxy:
        own = settings.model_copy(update={"rpc_urls": [proxy.url, rpc_url], "failure_budget": 100})
        keeper_run = Background(own, log, metrics).start()
        try:
            assert wait_for(lambda: keeper_run.liquidator.ticks >= 2, 20)  # started (see NOTE)
            proxy.share = 0.3
            time.sleep(1.0)
            proxy.down = True
            crash(protocol, chain, keeper)
            unhealthy, healthy = split_at(protocol, chain, scene)
            assert wait_for(all_closed(protocol, unhealthy), RUN_SECONDS)
            time.sleep(0.5)  # a few more ticks: a late duplicate would show
        finally:
            code = keeper_run.stop()
    assert code == 0
    assert_outcome(protocol, chain, start_block, unhealthy, healthy)
    assert metrics.get("rpc_errors") > 0
    assert keeper_run.chain.url == rpc_url  # it moved to the fallback
    assert proxy.faults["reset"] > 0


def test_faults__intermittent_errors_single_url__liquidates_each_once(
    protocol, chain, keeper, scene, settings, rpc_url, log, metrics
):
    """Only the proxy, failing 15 % of requests (reset, HTTP 500, JSON-RPC error; sends only
    reset or JSON-RPC error; HTTP 500s are tested below), and the first send reset: every unhealthy
    position is liquidated once, and the errors are counted."""
    start_block = chain.blocks.head.number + 1
    with FaultyRpcProxy(rpc_url, seed=7) as proxy:
        proxy.method_kinds["eth_sendRawTransaction"] = ("reset", "rpc")
        proxy.script["eth_sendRawTransaction"] = ["reset"]
        own = settings.model_copy(update={"rpc_urls": [proxy.url], "failure_budget": 100, "batch_size": 3,
                                          "receipt_timeout_s": 5.0})
        keeper_run = Background(own, log, metrics).start()
        try:
            assert wait_for(lambda: keeper_run.liquidator.ticks >= 2, 20)  # started (see NOTE)
            proxy.share = 0.15
            crash(protocol, chain, keeper)
            unhealthy, healthy = split_at(protocol, chain, scene)
            assert wait_for(all_closed(protocol, unhealthy), RUN_SECONDS)
            time.sleep(0.5)
        finally:
            code = keeper_run.stop()
    assert code == 0
    assert_outcome(protocol, chain, start_block, unhealthy, healthy)
    assert metrics.get("rpc_errors") > 0
    assert sum(proxy.faults[k] for k in ("reset", "500", "rpc")) > 0


def test_faults__answer_to_a_send_lost__no_double_liquidation(
    protocol, chain, keeper, scene, settings, rpc_url, log, metrics
):
    """The send reaches Anvil (automine: it is mined) but its answer is lost: the keeper sends
    the same signed transaction again, Anvil refuses it, and the positions it liquidated are
    then seen in the events, not sent again."""
    crash(protocol, chain, keeper)
    unhealthy, healthy = split(protocol, scene)
    start_block = chain.blocks.head.number + 1
    with FaultyRpcProxy(rpc_url) as proxy:
        proxy.script["eth_sendRawTransaction"] = ["drop"]
        own = settings.model_copy(update={"rpc_urls": [proxy.url]})
        code = run_until(own, log, metrics, all_closed(protocol, unhealthy))
    assert code == 0
    assert proxy.faults["drop"] == 1
    assert_outcome(protocol, chain, start_block, unhealthy, healthy)
    assert metrics.get("rpc_errors") > 0


def test_faults__first_url_answers_http_500__fallback_url_liquidates(
    protocol, chain, keeper, scene, settings, rpc_url, log, metrics
):
    start_block = chain.blocks.head.number + 1
    with FaultyRpcProxy(rpc_url) as proxy:
        own = settings.model_copy(update={"rpc_urls": [proxy.url, rpc_url], "failure_budget": 5})
        keeper_run = Background(own, log, metrics).start()
        try:
            assert wait_for(lambda: keeper_run.liquidator.ticks >= 2, 20)  # started (see NOTE)
            proxy.down_kind, proxy.down = "500", True
            crash(protocol, chain, keeper)
            unhealthy, healthy = split_at(protocol, chain, scene)
            wait_for(lambda: all_closed(protocol, unhealthy)() or not keeper_run.thread.is_alive(), 30)
            time.sleep(0.5)
        finally:
            code = keeper_run.stop()
    assert proxy.faults["500"] > 0
    assert code == 0
    assert_outcome(protocol, chain, start_block, unhealthy, healthy)
    assert keeper_run.chain.url == rpc_url


# ---------------------------------------------------------------- 2. a stuck transaction


def stuck_scenario(protocol: Any, chain: Any, keeper: Any, scene: list[Key], settings: KeeperSettings,
                   rpc_url: str, log: Log, metrics: Metrics, keeper_account: Any, base_fee_gwei: int) -> None:
    """Automine off while the keeper sends: its transaction waits in the pool past
    `stuck_after_s` and is replaced with higher fees at the same nonce; a block mined later
    carries the last replacement, which liquidates every unhealthy position once. The keeper
    goes through a pass-through proxy that records the raw transactions it sends."""
    if base_fee_gwei:
        chain.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(base_fee_gwei * 10**9)])
        chain.mine()
    crash(protocol, chain, keeper)
    unhealthy, healthy = split(protocol, scene)
    start_block = chain.blocks.head.number + 1
    nonce_before = keeper_account.nonce
    code = None
    with FaultyRpcProxy(rpc_url) as proxy:
        own = settings.model_copy(update={"rpc_urls": [proxy.url], "stuck_after_s": 1.0,
                                          "receipt_timeout_s": 30.0})
        chain.provider.make_request("evm_setAutomine", [False])
        keeper_run = None
        try:
            keeper_run = Background(own, log, metrics).start()
            assert wait_for(lambda: metrics.get("tx_replaced") >= 1, 15)
            time.sleep(1.5)  # past stuck_after_s again: one more replacement may go out
            chain.provider.make_request("evm_mine", [])
            assert wait_for(lambda: metrics.get("liquidations_confirmed") >= len(unhealthy), 15)
        finally:
            chain.provider.make_request("evm_setAutomine", [True])
            if keeper_run is not None:
                time.sleep(0.5)
                code = keeper_run.stop()
    assert code == 0
    assert_outcome(protocol, chain, start_block, unhealthy, healthy)
    assert metrics.get("tx_replaced") >= 1
    assert metrics.get("liquidations_sent") == len(unhealthy)
    logs = protocol.perp.Liquidation.range(start_block, chain.blocks.head.number + 1)
    mined = {str(e.transaction_hash) for e in logs}
    assert len(mined) == 1
    tx = chain.provider.web3.eth.get_transaction(mined.pop())
    assert tx["nonce"] == nonce_before
    # the transaction mined is a replacement: the same nonce, sent after the first
    sent = [Web3.to_hex(Web3.keccak(hexstr=raw)) for raw in proxy.raw_sent]
    assert len(sent) >= 2
    assert Web3.to_hex(tx["hash"]) in sent[1:]
    assert keeper_account.nonce >= nonce_before + 1


def test_faults__stuck_transaction__replaced_at_same_nonce_then_mined_once(
    protocol, chain, keeper, scene, settings, rpc_url, log, metrics, keeper_account
):
    """With a base fee (10 gwei), as on any live chain. (At this Anvil's zero base fee,
    Chain._fees gives max_fee == tip and a bump makes tip > max_fee; one run saw the
    original, not the replacement, mined: not pinned down, so not tested here.)"""
    stuck_scenario(protocol, chain, keeper, scene, settings, rpc_url, log, metrics, keeper_account, 10)


# ---------------------------------------------------------------- 3. killed and restarted


def test_faults__keeper_stopped_and_restarted__resumes_from_its_cursor(
    protocol, chain, keeper, accounts, scene, settings, log, metrics
):
    """A first keeper liquidates the crash and is stopped; while it is down new positions
    open and become unhealthy; a second keeper on the same state_dir resumes from the saved
    cursor (no rebuild from the deploy block) and liquidates them; nothing twice."""
    start_block = chain.blocks.head.number + 1
    own = settings.model_copy(update={"reorg_depth": 2})
    first = Background(own, log, metrics).start()
    try:
        crash(protocol, chain, keeper)
        unhealthy1, _ = split_at(protocol, chain, scene)
        assert wait_for(all_closed(protocol, unhealthy1), RUN_SECONDS)
    finally:
        assert first.stop() == 0
    stopped_cursor = first.liquidator.book.cursor
    assert (own.state_dir / "positions.json").exists()

    # while it is down: traders 4 to 7 open 30x and 45x on every side, then ETH -8 %, BTC +8 %
    eth, btc = protocol.markets["ETH"], protocol.markets["BTC"]
    sides = [(eth, True), (eth, False), (btc, True), (btc, False)]
    late = [open_position(protocol, accounts[4 + i], m, up, 500, (30, 45)[i % 2]) for i, (m, up) in enumerate(sides)]
    push(protocol, chain, keeper, {eth: 2_650 * WAD, btc: 67_400 * WAD})
    push(protocol, chain, keeper, {eth: 2_540 * WAD, btc: 70_000 * WAD})
    everything = scene + late
    unhealthy2, healthy = split(protocol, everything)
    assert set(unhealthy2) & set(late)
    assert chain.blocks.head.number > stopped_cursor

    metrics2 = Metrics()
    second = Background(own, log, metrics2)
    try:
        second.start()
        assert wait_for(all_closed(protocol, unhealthy2), RUN_SECONDS)
        time.sleep(0.5)
    finally:
        assert second.stop() == 0
    book = second.liquidator.book
    # resumed: one rewind of reorg_depth blocks from the saved cursor, not a rebuild
    assert book.rewinds >= 1 and book.last_rewind_to == stopped_cursor - own.reorg_depth
    assert book.last_rewind_to > protocol.deploy_block
    assert_outcome(protocol, chain, start_block, unhealthy1 + unhealthy2, healthy)
    assert metrics2.get("liquidations_confirmed") == len(unhealthy2)


# ---------------------------------------------------------------- 4. the RPC down and back


def test_faults__rpc_down_for_a_while__keeper_survives_then_liquidates(
    protocol, chain, keeper, scene, settings, rpc_url, log, metrics
):
    """Only the proxy; it goes down (every connection reset) long enough for whole ticks to
    fail, the prices crash meanwhile, and it comes back: the keeper kept running within its
    (raised) failure budget and liquidates every unhealthy position once."""
    start_block = chain.blocks.head.number + 1
    with FaultyRpcProxy(rpc_url) as proxy:
        own = settings.model_copy(update={"rpc_urls": [proxy.url], "rpc_retries": 1, "failure_budget": 50})
        keeper_run = Background(own, log, metrics).start()
        try:
            assert wait_for(lambda: keeper_run.liquidator.ticks >= 2, 20)
            proxy.down = True
            crash(protocol, chain, keeper)
            unhealthy, healthy = split_at(protocol, chain, scene)
            assert wait_for(lambda: metrics.get("tick_failures") >= 1, 20)
            time.sleep(2)
            assert all(protocol.perp.get_position(*k).size_usd != 0 for k in unhealthy)
            proxy.down = False
            assert wait_for(all_closed(protocol, unhealthy), RUN_SECONDS)
            time.sleep(0.5)
        finally:
            code = keeper_run.stop()
    assert code == 0
    assert_outcome(protocol, chain, start_block, unhealthy, healthy)
    assert metrics.get("rpc_errors") > 0 and metrics.get("tick_failures") >= 1
