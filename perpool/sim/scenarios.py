"""Market scenarios: a price path in chain time, the crowd that trades it, the keeper outages
and the settings a scenario needs. Pure and seeded: the same name, seed and mode give the
same `Scenario`, step for step (`tests/sim/test_scenarios.py`).

A path is a list of `Step`s. Each step first applies its keeper actions (`stop:liquidator`,
`start:prices`, ...), lets the crowd trade, then moves chain time forward by `dt` seconds,
where the price keeper finds the step's prices (the simulation writes the whole path as the
keeper's CSV source, stamped in chain time). Prices are parts per million of each market's
start price (`PPM`), integers end to end; the keeper's CSV gets exact decimal text.

Built in (`SCENARIOS`): crash, squeeze, funding-spike, oracle-lag, keeper-outage; `replay`
builds one from a CSV price path (`timestamp,market,price`, the price keeper's format).
`short=True` is the CI mode: a small crowd and fewer, longer steps over the same moves.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from keepers.sources import CsvReplay, SourceError

PPM = 1_000_000  # price factors: parts per million of the start price
WAD = 10**18
HOUR = 3_600

#: keeper processes a step can stop and start (names of `perpool-keeper` commands)
KEEPERS = ("prices", "orders", "liquidator", "adl")


class ScenarioError(ValueError):
    """A scenario that cannot be built (unknown name, bad CSV, bad option)."""


@dataclass(frozen=True)
class Step:
    """One step of a scenario: keeper `actions` first, then crowd trading, then `dt`
    seconds of chain time after which every market trades at `factors[m]` PPM of its start."""

    dt: int
    factors: dict[str, int]
    actions: tuple[str, ...] = ()
    label: str = ""


@dataclass(frozen=True)
class Whale:
    """A large position opened with the crowd (the squeeze's profitable longs)."""

    market: str
    is_long: bool
    collateral_usd: int
    leverage: int


@dataclass(frozen=True)
class CrowdSpec:
    """The crowd: `size` traders, each opening one position at the start; `long_share` of
    them long; leverage drawn log-uniformly in [min_leverage, max_leverage]; collateral
    uniform in whole dollars; `eth_share` of them on ETH. Every step `churn` of them close
    or reopen through market orders; `stop_loss_share` also place a stop-loss order
    `stop_loss_bps` away from the price once their position is open."""

    size: int
    long_share: float
    min_leverage: float = 2.0
    max_leverage: float = 30.0
    min_collateral_usd: int = 500
    max_collateral_usd: int = 5_000
    eth_share: float = 0.6
    churn: int = 2
    stop_loss_share: float = 0.2
    stop_loss_bps: int = 800
    whales: tuple[Whale, ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    seed: int
    short: bool
    steps: list[Step]
    crowd: CrowdSpec
    lp_usd: int = 30_000_000  # the pool the LPs seed
    insurance_usd: int = 50_000  # the insurance fund the operator seeds
    market_overrides: dict[str, int] = field(default_factory=dict)  # MarketConfig fields
    risk_overrides: dict[str, int] = field(default_factory=dict)  # RiskConfig fields
    max_lp_loss_pct: float = 10.0  # verdict: LPs may lose at most this much of the share price
    max_unhealthy_blocks: int = 10  # verdict: no position unhealthy for longer

    @property
    def markets(self) -> list[str]:
        return sorted(self.steps[0].factors) if self.steps else []

    @property
    def duration_s(self) -> int:
        return sum(s.dt for s in self.steps)

    def settings(self) -> dict[str, object]:
        """What the report prints as the scenario's parameters."""
        return {
            "summary": self.summary,
            "steps": len(self.steps),
            "chain_hours": round(self.duration_s / HOUR, 2),
            "crowd": self.crowd.size,
            "long_share": self.crowd.long_share,
            "leverage": f"{self.crowd.min_leverage:g}-{self.crowd.max_leverage:g}x",
            "whales": len(self.crowd.whales),
            "lp_usd": self.lp_usd,
            "insurance_usd": self.insurance_usd,
            **{f"market.{k}": v for k, v in self.market_overrides.items()},
            **{f"risk.{k}": v for k, v in self.risk_overrides.items()},
            "max_lp_loss_pct": self.max_lp_loss_pct,
            "max_unhealthy_blocks": self.max_unhealthy_blocks,
        }


# ---------------------------------------------------------------- paths

MARKETS = ("BTC", "ETH")
WARMUP_STEPS = 3  # flat steps first: the crowd's opening orders fill at the first pushes
WARMUP_DT = 30  # s
FUNDING_STEP_S = 1_500  # funding-spike: 25 min steps, within the OrderBook's 30 min order expiry


def _glide(start: float, end: float, n: int) -> list[float]:
    """n factors going geometrically from `start` (excluded) to `end` (included)."""
    return [start * (end / start) ** ((k + 1) / n) for k in range(n)]


def _steps(
    rng: random.Random,
    legs: list[tuple[int, int, float, str]],
    noise_ppm: int,
    actions: dict[int, tuple[str, ...]] | None = None,
) -> list[Step]:
    """Warm-up steps, then `legs` of (steps, dt, end factor, label) gliding every market
    from the previous factor to `end`, each step with independent noise of at most
    `noise_ppm` per market (BTC moves 80 % as much as ETH). `actions` by step index."""
    steps = [Step(WARMUP_DT, {m: PPM for m in MARKETS}, label="warm-up") for _ in range(WARMUP_STEPS)]
    level = 1.0
    for n, dt, end, label in legs:
        for f in _glide(level, end, n):
            factors = {}
            for m in MARKETS:
                beta = 0.8 if m == "BTC" else 1.0
                move = 1.0 + (f - 1.0) * beta
                noise = rng.randint(-noise_ppm, noise_ppm)
                factors[m] = max(int(round(move * PPM)) + noise, 1)
            steps.append(Step(dt, factors, label=label))
        level = end
    for index, names in (actions or {}).items():
        steps[index] = replace(steps[index], actions=steps[index].actions + names)
    return steps


def crash(seed: int, short: bool) -> Scenario:
    """A 30 % drop over minutes into a crowd that is 70 % long, then a calm tail."""
    rng = random.Random(f"crash:{seed}")
    n = 10 if short else 40
    dt = 60 if short else 15
    steps = _steps(rng, [(n, dt, 0.70, "drop"), (3 if short else 8, 30, 0.70, "calm")], 1_500)
    crowd = CrowdSpec(size=24 if short else 300, long_share=0.7, max_leverage=40.0)
    return Scenario("crash", "a 30 % drop over minutes into a long-heavy crowd", seed, short, steps, crowd)


def squeeze(seed: int, short: bool) -> Scenario:
    """A fast 25 % rally into crowded shorts while a few large longs ride it: the longs'
    pnl factor crosses the ADL trigger (a pool thin against its open interest)."""
    rng = random.Random(f"squeeze:{seed}")
    n = 8 if short else 20
    steps = _steps(rng, [(n, 15 if short else 8, 1.25, "rally"), (4 if short else 8, 20, 1.25, "top")], 1_000)
    whales = tuple(Whale("ETH", True, 400_000, 5) for _ in range(4 if short else 8))
    crowd = CrowdSpec(size=24 if short else 300, long_share=0.2, max_leverage=25.0, whales=whales)
    return Scenario(
        "squeeze",
        "a 25 % rally into crowded shorts; large longs push the pnl factor over the ADL trigger",
        seed,
        short,
        steps,
        crowd,
        lp_usd=2_500_000 if short else 4_000_000,
        market_overrides={"reserve_factor_bps": 2_000},
        risk_overrides={"max_pnl_factor_for_adl_bps": 3_000, "min_pnl_factor_after_adl_bps": 2_000},
    )


def funding_spike(seed: int, short: bool) -> Scenario:
    """Open interest skewed hard long for a day of chain time at a raised funding factor:
    the longs pay, the highest-levered of them run out of collateral."""
    rng = random.Random(f"funding-spike:{seed}")
    hours = 6 if short else 24
    steps = _steps(rng, [(-(-hours * HOUR // FUNDING_STEP_S), FUNDING_STEP_S, 1.0, "skewed")], 2_000)
    crowd = CrowdSpec(size=24 if short else 300, long_share=0.9, min_leverage=5.0, max_leverage=45.0, churn=1)
    per_hour = WAD // HOUR
    return Scenario(
        "funding-spike",
        f"open interest 90 % long for {hours} h of chain time at 0.5 %/h funding",
        seed,
        short,
        steps,
        crowd,
        market_overrides={"funding_factor": per_hour * 50 // 10_000, "max_funding_rate": per_hour * 50 // 10_000},
    )


def oracle_lag(seed: int, short: bool) -> Scenario:
    """The price keeper stops; the market falls 15 % while the Oracle goes stale; the keeper
    comes back and the gap lands in one push (after an outage the Oracle bounds the next push
    only by the reference feed, and turns the spread on: docs/oracle.md)."""
    rng = random.Random(f"oracle-lag:{seed}")
    lag = 6 if short else 12
    legs = [(2, 30, 0.99, "before"), (lag, 60, 0.85, "lag"), (4 if short else 8, 30, 0.85, "after")]
    first_lag = WARMUP_STEPS + 2
    actions = {first_lag: ("stop:prices",), first_lag + lag: ("start:prices",)}
    steps = _steps(rng, legs, 1_000, actions)
    crowd = CrowdSpec(size=24 if short else 300, long_share=0.7, max_leverage=30.0)
    return Scenario("oracle-lag", "the price keeper pauses while the price falls 15 %, then gaps", seed, short, steps, crowd)


def keeper_outage(seed: int, short: bool) -> Scenario:
    """The liquidator stops during a 20 % drop and comes back after it."""
    rng = random.Random(f"keeper-outage:{seed}")
    n = 8 if short else 24
    legs = [(n, 30 if short else 15, 0.80, "drop"), (4 if short else 8, 30, 0.80, "after")]
    stop = WARMUP_STEPS + 1
    start = WARMUP_STEPS + n
    steps = _steps(rng, legs, 1_000, {stop: ("stop:liquidator",), start: ("start:liquidator",)})
    crowd = CrowdSpec(size=24 if short else 300, long_share=0.7, max_leverage=40.0)
    return Scenario("keeper-outage", "the liquidator is down during a 20 % drop", seed, short, steps, crowd)


def replay(seed: int, short: bool, path: Path | str) -> Scenario:
    """A scenario from a CSV price path (`timestamp,market,price`, any start time): each
    distinct timestamp is a step; a market without a row there keeps its last price. Only
    the markets the devnet lists (ETH, BTC) are read; at least one must be in the file."""
    try:
        source = CsvReplay(path, clock=lambda: 0)
    except SourceError as exc:
        raise ScenarioError(str(exc)) from exc
    rows = {m: {q.observed_at: q.price for q in source.rows(m)} for m in MARKETS}
    times = sorted({t for m in MARKETS for t in rows[m]})
    if not times:
        raise ScenarioError(f"csv {path}: no rows for {' or '.join(MARKETS)}")
    start: dict[str, int] = {}
    last: dict[str, int] = {}
    steps = [Step(WARMUP_DT, {m: PPM for m in MARKETS}, label="warm-up") for _ in range(WARMUP_STEPS)]
    previous = times[0]
    for t in times:
        for m in MARKETS:
            if t in rows[m]:
                start.setdefault(m, rows[m][t])
                last[m] = rows[m][t]
        factors = {m: (last[m] * PPM // start[m] if m in last else PPM) for m in MARKETS}
        steps.append(Step(max(t - previous, 1), factors, label="replay"))
        previous = t
    if len(steps) > WARMUP_STEPS + 1 and steps[WARMUP_STEPS].dt == 1:
        steps[WARMUP_STEPS] = replace(steps[WARMUP_STEPS], dt=WARMUP_DT)
    crowd = CrowdSpec(size=24 if short else 300, long_share=0.5)
    scenario = Scenario("replay", f"replay of {Path(path).name}", seed, short, steps, crowd)
    return scenario


SCENARIOS: dict[str, Callable[[int, bool], Scenario]] = {
    "crash": crash,
    "squeeze": squeeze,
    "funding-spike": funding_spike,
    "oracle-lag": oracle_lag,
    "keeper-outage": keeper_outage,
}

DEFAULT_SCENARIO = "crash"


def build(name: str, seed: int = 1, short: bool = False, csv_path: Path | str | None = None) -> Scenario:
    """The scenario `name` (or `replay` of `csv_path`) for `seed`."""
    if name == "replay":
        if csv_path is None:
            raise ScenarioError("replay needs a CSV price path (--csv FILE: timestamp,market,price)")
        return replay(seed, short, csv_path)
    if csv_path is not None:
        raise ScenarioError(f"--csv is for the replay scenario, not {name!r}")
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r}: one of {', '.join([*SCENARIOS, 'replay'])}")
    return SCENARIOS[name](seed, short)


# ---------------------------------------------------------------- the keeper's CSV


def step_times(scenario: Scenario, t0: int) -> list[int]:
    """The chain time at the end of each step when the run starts at `t0`."""
    out, t = [], t0
    for step in scenario.steps:
        t += step.dt
        out.append(t)
    return out


def price_at(start_wad: int, factor_ppm: int) -> int:
    """A step's WAD price: the start price times the factor, rounded down to a whole
    micro-dollar (so the CSV text is exact and short)."""
    micro = 10**12
    return start_wad * factor_ppm // PPM // micro * micro


def write_price_csv(
    scenario: Scenario, start_prices: dict[str, int], t0: int, path: Path
) -> list[dict[str, int]]:
    """Write the path as the price keeper's CSV (`timestamp,market,price`) in chain time,
    starting with the start prices at `t0`; return each step's WAD prices."""
    rows: list[dict[str, int]] = []
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "market", "price"])
        for m in scenario.markets:
            writer.writerow([t0, m, decimal_text(start_prices[m])])
        for t, step in zip(step_times(scenario, t0), scenario.steps):
            prices = {m: price_at(start_prices[m], step.factors[m]) for m in scenario.markets}
            rows.append(prices)
            for m, p in prices.items():
                writer.writerow([t, m, decimal_text(p)])
    return rows


def decimal_text(wad: int) -> str:
    """Exact decimal text of a WAD amount ("2900.5")."""
    whole, frac = divmod(wad, WAD)
    return f"{whole}.{frac:018d}".rstrip("0").rstrip(".")


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))
