"""The liquidator daemon end to end on the test Anvil: 30 positions of both sides in two
markets at 2x to 45x, then ETH falls 8 % and BTC rises 8 % in two pushes each (within the
Oracle's 10 % jump bound). Every position `Perp.is_liquidatable` calls unhealthy before the
run is liquidated exactly once, by the keeper, and no healthy one is touched; two keepers
with different keys competing still liquidate each exactly once between them.

Ape opens the positions and pushes the prices (test accounts 0 to 7 trade, `keeper` pushes);
the keepers sign with Anvil dev accounts 9 (the `settings` fixture) and 8, through web3."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Callable

import pytest
from pydantic import SecretStr

from keepers.chain import Chain
from keepers.lifecycle import Runner
from keepers.liquidator import Liquidator
from keepers.log import Log
from keepers.metrics import Metrics
from perpool import params

from conftest import fund
from liquidator_scene import WAD, onchain, open_position, push

ACCOUNT_8_KEY = "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97"
LEVERAGES = [2, 20, 5, 30, 8, 45]  # the healthy (2, 5, 8) stay far from the boundary after the move
RUN_SECONDS = 60  # an upper bound: each run stops a few ticks after the last liquidation


@pytest.fixture(scope="module")
def scene(accounts, chain, keeper, protocol) -> list[tuple[str, int, bool]]:
    """30 positions: trader i // 4 (test accounts 0 to 7), side i % 4 of ETH long, ETH short,
    BTC long, BTC short, leverage cycling through LEVERAGES, $1,000 to $1,400 of collateral
    ($683,200 of open interest against the $1M pool)."""
    eth, btc = protocol.markets["ETH"], protocol.markets["BTC"]
    traders = [accounts[i] for i in range(8)]
    for trader in traders:
        fund(protocol, trader, 100_000)
    push(protocol, chain, keeper, {eth: 3_000 * WAD, btc: 60_000 * WAD})
    sides = [(eth, True), (eth, False), (btc, True), (btc, False)]
    keys = []
    for i in range(30):
        market, is_long = sides[i % 4]
        leverage = LEVERAGES[(i // 4 + i) % len(LEVERAGES)]
        keys.append(open_position(protocol, traders[i // 4], market, is_long, 1_000 + 100 * (i % 5), leverage))
    return keys


def crash(protocol: Any, chain: Any, keeper: Any) -> None:
    """ETH -8 % and BTC +8 % in two pushes each."""
    eth, btc = protocol.markets["ETH"], protocol.markets["BTC"]
    push(protocol, chain, keeper, {eth: 2_850 * WAD, btc: 62_400 * WAD})
    push(protocol, chain, keeper, {eth: 2_760 * WAD, btc: 64_800 * WAD})


class StopWhen:
    """A keeper that stops its runners a few ticks after `done()` first holds, so a late
    duplicate send would still be seen."""

    name = "stop_when"

    def __init__(self, done: Callable[[], bool], runners: list[Runner], extra_ticks: int = 5) -> None:
        self.done, self.runners, self.extra_ticks, self.seen = done, runners, extra_ticks, 0

    def startup(self) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def tick(self) -> None:
        if self.seen or self.done():
            self.seen += 1
        if self.seen > self.extra_ticks:
            for runner in self.runners:
                runner.stop("scenario done")


def liquidations(client: Chain, from_block: int) -> list[Any]:
    return client.logs(client.perp.events.Liquidation, from_block, client.head())


def split(protocol: Any, keys: list[tuple[str, int, bool]]) -> tuple[list, dict]:
    """(the unhealthy keys, the healthy ones with their state) by the contract itself."""
    unhealthy = [k for k in keys if protocol.perp.is_liquidatable(*k)]
    healthy = {k: onchain(protocol, k) for k in keys if k not in unhealthy}
    return unhealthy, healthy


def all_closed(protocol: Any, keys: list) -> Callable[[], bool]:
    return lambda: all(protocol.perp.get_position(*k).size_usd == 0 for k in keys)


def test_liquidator__price_crash__every_unhealthy_liquidated_once_and_fees_claimed(
    protocol, chain, keeper, scene, settings, log, metrics, keeper_account
):
    crash(protocol, chain, keeper)
    unhealthy, healthy = split(protocol, scene)
    assert 0 < len(unhealthy) < len(scene)  # a real mix: 8 unhealthy, 22 healthy
    start_block = chain.blocks.head.number + 1
    balance_before = protocol.token.balanceOf(keeper_account)

    client = Chain(settings.model_copy(update={"batch_size": 3}), log, metrics)
    liquidator = Liquidator(client, client.settings, log, metrics)
    runner = Runner([liquidator], log, metrics, settings.poll_interval_s, settings.failure_budget)
    runner.keepers.append(StopWhen(all_closed(protocol, unhealthy), [runner]))
    started = time.monotonic()
    assert runner.run(max_seconds=RUN_SECONDS) == 0
    assert time.monotonic() - started < RUN_SECONDS

    events = liquidations(client, start_block)
    assert Counter((e["args"]["account"], e["args"]["market"], e["args"]["is_long"]) for e in events) == Counter(
        unhealthy)
    assert {e["args"]["fee_receiver"] for e in events} == {keeper_account.address}
    for key, state in healthy.items():
        assert onchain(protocol, key) == state
    assert metrics.get("liquidations_confirmed") == len(unhealthy)
    assert metrics.get("liquidations_sent") == len(unhealthy)  # 8 in batches of 3: each once
    assert metrics.get("batches_sent") == 3
    assert metrics.get("liquidations_failed") == 0 and metrics.get("tick_failures") == 0
    assert metrics.get("positions_tracked") == len(healthy)
    assert metrics.get("last_block") == chain.blocks.head.number
    # the fees were credited in the Vault and claimed (more than the $50 threshold)
    fees = sum(e["args"]["fee"] for e in events)
    assert fees * 10**12 > 50 * WAD
    assert protocol.vault.claimable(keeper_account) == 0
    assert protocol.token.balanceOf(keeper_account) == balance_before + fees
    assert metrics.get("fees_claimed") == fees


def test_liquidator__two_keepers_competing__each_position_liquidated_once_in_total(
    protocol, chain, keeper, scene, settings, accounts, keeper_account, tmp_path
):
    crash(protocol, chain, keeper)
    unhealthy, healthy = split(protocol, scene)
    start_block = chain.blocks.head.number + 1

    keepers, runners, metrics_of = [], [], []
    for name, key, batch in (("nine", None, 4), ("eight", ACCOUNT_8_KEY, 5)):
        update: dict[str, Any] = {"state_dir": tmp_path / name, "batch_size": batch}
        if key is not None:
            update["private_key"] = SecretStr(key)
        own = settings.model_copy(update=update)
        log, metrics = Log(name), Metrics()
        client = Chain(own, log, metrics)
        # trust the local health function (no per-position eth_call): both race to send
        keepers.append(Liquidator(client, own, log, metrics, confirm_on_chain_max=0))
        runners.append(Runner([keepers[-1]], log, metrics, own.poll_interval_s, own.failure_budget))
        metrics_of.append(metrics)
    assert {k.account for k in keepers} == {keeper_account.address, accounts[8].address}

    codes: dict[int, int] = {}
    threads = [
        threading.Thread(target=lambda i=i: codes.__setitem__(i, runners[i].run(max_seconds=RUN_SECONDS)))
        for i in range(2)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + RUN_SECONDS
    done = all_closed(protocol, unhealthy)
    while time.monotonic() < deadline and not done():
        time.sleep(0.2)
    time.sleep(1.0)  # let both see the last blocks
    for runner in runners:
        runner.stop("scenario done")
    for t in threads:
        t.join(timeout=RUN_SECONDS)
    assert codes == {0: 0, 1: 0}  # neither crashed nor ran out of its failure budget

    events = liquidations(keepers[0].chain, start_block)
    assert Counter((e["args"]["account"], e["args"]["market"], e["args"]["is_long"]) for e in events) == Counter(
        unhealthy)
    for key, state in healthy.items():
        assert onchain(protocol, key) == state
    by_receiver = Counter(e["args"]["fee_receiver"] for e in events)
    assert sum(m.get("liquidations_confirmed") for m in metrics_of) == len(unhealthy)
    for k, m in zip(keepers, metrics_of):
        assert m.get("liquidations_confirmed") == by_receiver.get(k.account, 0)
        assert m.get("tick_failures") == 0


def test_liquidator__price_goes_stale__waits_without_failing_then_liquidates(
    protocol, chain, keeper, scene, settings, log, metrics
):
    crash(protocol, chain, keeper)
    unhealthy, healthy = split(protocol, scene)
    chain.pending_timestamp = chain.blocks.head.timestamp + 400  # past the 300 s price age
    chain.mine()
    liquidator = Liquidator(Chain(settings, log, metrics), settings, log, metrics)
    liquidator.startup()
    for _ in range(3):
        liquidator.tick()  # every side's close price reverts: nothing to do, no failure
    assert metrics.get("liquidations_sent") == metrics.get("liquidations_failed") == 0
    assert all(protocol.perp.get_position(*k).size_usd != 0 for k in unhealthy)

    eth, btc = protocol.markets["ETH"], protocol.markets["BTC"]
    push(protocol, chain, keeper, {eth: 2_760 * WAD, btc: 64_800 * WAD})  # the keeper is back
    liquidator.tick()
    assert all_closed(protocol, unhealthy)()
    assert metrics.get("liquidations_confirmed") == len(unhealthy)
    for key, state in healthy.items():
        assert onchain(protocol, key) == state


def test_liquidator__maintenance_tier_added__reloads_the_settings_and_liquidates(
    protocol, chain, keeper, deployer, scene, settings, log, metrics
):
    """No price move: a new tier (4 % from $40,000, logged as MarketConfigured) makes the
    two ETH positions above $40,000 at 45x unhealthy while the liquidator runs."""
    eth, btc = protocol.markets["ETH"], protocol.markets["BTC"]
    push(protocol, chain, keeper, {eth: 3_000 * WAD, btc: 60_000 * WAD})
    liquidator = Liquidator(Chain(settings, log, metrics), settings, log, metrics)
    liquidator.startup()
    liquidator.tick()
    assert metrics.get("liquidations_sent") == 0

    risk = {**params.RISK_CONFIG, "tier_threshold_usd": [40_000 * WAD, 0, 0], "tier_maintenance_bps": [400, 0, 0]}
    protocol.configurator.set_risk_config(eth, risk, sender=deployer)
    unhealthy, healthy = split(protocol, scene)
    assert sorted(protocol.perp.get_position(*k).size_usd // WAD for k in unhealthy) == [58_500, 63_000, 63_000]
    liquidator.tick()
    assert all_closed(protocol, unhealthy)()
    assert metrics.get("liquidations_confirmed") == 3
    for key, state in healthy.items():
        assert onchain(protocol, key) == state
