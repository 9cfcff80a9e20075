"""The ADL keeper end to end on the test Anvil.

Scene (Ape): the $1M pool, ETH's ADL trigger lowered to 5 % with a 3 % target, six ETH longs
of $120k at 25x, 10x, 10x (a tie on the score, broken by the position key), 5x, 3x and 2x
opened at $3,000. ETH then rises to $3,630 in two pushes of 10 % (the Oracle's jump bound;
21 % of the 40 % window) by the `keeper` account: each long makes ~$24.8k at the close price
(the spread is on), the side ~$149k, ~14.8 % of the pool. Closing the top four in full leaves
~5.5 %, still over the trigger; the fifth closes in part, down to 3 %; the 2x is untouched.

The keeper daemon signs with Anvil dev account 9 through web3 (`settings`) and runs under
`Runner` with bounded ticks; Ape only sets the scene and reads the results."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import fund
from keepers.adl import AdlKeeper
from keepers.chain import Chain
from keepers.decide.adl import BPS, plan, rank
from keepers.lifecycle import Runner
from perpool import params
from perpool.prices import push_stepped

WAD = 10**18
UNIT = 10**6  # token units per dollar
MAX_UINT = 2**256 - 1
TRIGGER_BPS, TARGET_BPS = 500, 300
SIZE_USD = 120_000
LEVERAGES = (25, 10, 10, 5, 3, 2)
RUN_SECONDS = 60  # an upper bound on each run; the ticks bound it first


def push(protocol: Any, chain: Any, updater: Any, prices: dict[int, int]) -> int:
    """Push `prices` (market -> WAD) observed in the next block, its timestamp pinned just
    after the head and the newest stored observation; return that timestamp."""
    stored = max(protocol.oracle.price_timestamp(m) for m in prices)
    ts = max(chain.pending_timestamp, chain.blocks.head.timestamp + 1, stored + 1)
    # a move beyond the Oracle's jump bound is stepped through it, ending at `ts` (or later)
    return push_stepped(protocol.oracle, chain, updater, prices, at=ts)


@pytest.fixture(scope="module")
def traders(accounts) -> list[Any]:
    """Six position owners (test accounts 3 to 8; 9 is the keeper daemon's)."""
    return [accounts[i] for i in range(3, 9)]


@pytest.fixture(scope="module")
def eth(protocol) -> int:
    return protocol.markets["ETH"]


@pytest.fixture(scope="module")
def scene(protocol, chain, deployer, keeper, traders, eth) -> list[Any]:
    """ADL at 5 % down to 3 % on ETH; the six longs opened at $3,000 (BTC kept fresh)."""
    protocol.configurator.set_risk_config(
        eth,
        {
            **params.RISK_CONFIG,
            "max_pnl_factor_for_adl_bps": TRIGGER_BPS,
            "min_pnl_factor_after_adl_bps": TARGET_BPS,
        },
        sender=deployer,
    )
    push(protocol, chain, keeper, {eth: 3_000 * WAD, protocol.markets["BTC"]: 60_000 * WAD})
    for trader, leverage in zip(traders, LEVERAGES):
        fund(protocol, trader, 100_000)
        protocol.perp.increase_position(
            eth, True, SIZE_USD // leverage * UNIT, SIZE_USD * WAD, MAX_UINT, sender=trader
        )
    return traders


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(scene, deployment_file, rpc_url, keeper_account):
    """Module-scoped fixtures before any test (no snapshot rebase between tests)."""


def rally(
    protocol: Any, chain: Any, keeper: Any, eth: int, prices: tuple[int, ...] = (3_300, 3_630)
) -> None:
    for price in prices:
        push(protocol, chain, keeper, {eth: price * WAD, protocol.markets["BTC"]: 60_000 * WAD})


def ranking(protocol: Any, eth: int, traders: list[Any]) -> list[tuple[int, int, str]]:
    """(-score, key, account) of every trader, sorted: the contract's own ranking."""
    rows = []
    for t in traders:
        score = protocol.risk.adl_score(t, eth, True)
        key = int.from_bytes(bytes(protocol.perp.position_key(t, eth, True)), "big")
        rows.append((-score, key, t.address))
    return sorted(rows)


def deleverages(client: Chain, start: int) -> list[Any]:
    return client.logs(client.risk_engine.events.AutoDeleverage, start, client.head())


def run(settings: Any, log: Any, metrics: Any, ticks: int) -> tuple[Chain, AdlKeeper]:
    client = Chain(settings, log, metrics)
    keeper = AdlKeeper(client, settings, log, metrics)
    runner = Runner([keeper], log, metrics, settings.poll_interval_s, settings.failure_budget)
    assert runner.run(max_ticks=ticks, max_seconds=RUN_SECONDS) == 0
    return client, keeper


def test_adl__side_over_the_trigger__deleveraged_in_score_order_down_to_the_target(
    protocol, chain, keeper, scene, eth, settings, log, metrics, keeper_account
):
    rally(protocol, chain, keeper, eth)
    before = protocol.risk.adl_state(eth, True)
    assert before.triggered and before.pnl_factor_bps > 1_400
    ranked = ranking(protocol, eth, scene)
    # 25x first, 2x last
    assert ranked[0][2] == scene[0].address and ranked[-1][2] == scene[-1].address
    assert ranked[1][0] == ranked[2][0]  # the two 10x tie on the score: the key decides
    # the pure forecast from what the keeper reads
    forecaster = AdlKeeper(Chain(settings, log, metrics), settings, log, metrics)
    forecaster.startup()
    side, candidates = forecaster.snapshot(eth, True)
    assert [(-c.score, c.key, c.account) for c in rank(candidates, side.token_scale)] == ranked
    forecast = plan(side, candidates)
    assert [s.candidate.account for s in forecast.steps] == [r[2] for r in ranked[:5]]
    assert forecast.stop == "below trigger"
    assert (
        forecast.steps[0].size
        == protocol.risk.adl_size_limit(scene[0], eth, True)
        == SIZE_USD * WAD
    )
    start = chain.blocks.head.number + 1

    client, _ = run(settings, log, metrics, ticks=3)

    events = deleverages(client, start)
    accounts = [e["args"]["account"] for e in events]
    # in score order, the tie by key, the 2x untouched
    assert accounts == [r[2] for r in ranked[:5]]
    scores = [(-e["args"]["score"], int.from_bytes(e["args"]["key"], "big")) for e in events]
    assert scores == [r[:2] for r in ranked[:5]] == sorted(scores)
    assert {e["args"]["keeper"] for e in events} == {keeper_account.address}
    sizes = [e["args"]["size_delta"] for e in events]
    # four whole, one part
    assert sizes[:4] == [SIZE_USD * WAD] * 4 and 0 < sizes[4] < SIZE_USD * WAD
    for e in events:
        assert e["args"]["pnl_factor_before_bps"] >= TRIGGER_BPS  # triggered (the bps round down)
        assert e["args"]["pnl_factor_after_bps"] >= TARGET_BPS
        # the keeper asks for the limit it read; a clamp read a block earlier may shrink by
        # the borrowing accrued since, and the contract clamps again
        assert e["args"]["size_requested"] >= e["args"]["size_delta"]
        assert e["args"]["size_requested"] - e["args"]["size_delta"] < SIZE_USD * WAD // 10**6
    after = protocol.risk.adl_state(eth, True)
    assert not after.triggered and after.pnl_usd * BPS <= TRIGGER_BPS * after.pool_usd
    assert after.pnl_usd * BPS >= TARGET_BPS * after.pool_usd  # never below the target
    assert after.pnl_factor_bps == TARGET_BPS  # the clamp lands on it
    assert protocol.perp.get_position(scene[-1], eth, True).size_usd == SIZE_USD * WAD
    # the pure forecast lands within 1 bps of the chain (token rounding, fees accrued meanwhile)
    forecast_bps = forecast.pnl_after * BPS // forecast.pool_after
    assert abs(forecast_bps - after.pnl_usd * BPS // after.pool_usd) <= 1
    assert metrics.get("adl_sent") == metrics.get("adl_confirmed") == 5
    assert metrics.get("adl_failed") == metrics.get("adl_refused") == 0
    assert metrics.get("tick_failures") == 0
    assert metrics.get("adl_pnl_factor_bps_ETH_long") == after.pnl_factor_bps


def test_adl__below_the_trigger__does_nothing(
    protocol, chain, keeper, scene, eth, settings, log, metrics, keeper_account
):
    rally(protocol, chain, keeper, eth, prices=(3_030,))  # +1 %: ~$7k of profit on a $1M pool
    state = protocol.risk.adl_state(eth, True)
    assert state.pnl_usd > 0 and not state.triggered
    start = chain.blocks.head.number + 1
    nonce = keeper_account.nonce

    client, _ = run(settings, log, metrics, ticks=3)

    assert deleverages(client, start) == []
    assert (
        metrics.get("adl_sent") == metrics.get("adl_refused") == metrics.get("tick_failures") == 0
    )
    assert metrics.get("adl_pnl_factor_bps_ETH_long") == state.pnl_factor_bps > 0
    assert metrics.get("adl_positions_tracked") == len(scene)
    assert keeper_account.nonce == nonce  # not a transaction sent


def test_adl__per_tick_budget__top_two_first_then_the_rest(
    protocol, chain, keeper, scene, eth, settings, log, metrics
):
    rally(protocol, chain, keeper, eth)
    ranked = ranking(protocol, eth, scene)
    start = chain.blocks.head.number + 1
    two = settings.model_copy(update={"adl_max_per_tick": 2})

    client, _ = run(two, log, metrics, ticks=1)

    assert [e["args"]["account"] for e in deleverages(client, start)] == [r[2] for r in ranked[:2]]
    assert protocol.risk.adl_state(eth, True).triggered
    run(two, log, metrics, ticks=3)
    assert [e["args"]["account"] for e in deleverages(client, start)] == [r[2] for r in ranked[:5]]
    assert not protocol.risk.adl_state(eth, True).triggered
    assert metrics.get("adl_confirmed") == 5


def test_adl__stale_price__waits_without_failing(
    protocol, chain, keeper, scene, eth, settings, log, metrics
):
    rally(protocol, chain, keeper, eth)
    assert protocol.risk.adl_state(eth, True).triggered
    chain.pending_timestamp = chain.blocks.head.timestamp + 400  # past the 300 s price age
    chain.mine()
    start = chain.blocks.head.number + 1

    client, _ = run(settings, log, metrics, ticks=3)

    assert deleverages(client, start) == []
    assert metrics.get("adl_sent") == metrics.get("tick_failures") == 0
    # a fresh push and the keeper finishes the job
    rally(protocol, chain, keeper, eth, prices=(3_630,))
    run(settings, log, metrics, ticks=2)
    assert not protocol.risk.adl_state(eth, True).triggered
    assert metrics.get("adl_confirmed") == 5
