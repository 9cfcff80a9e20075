"""The scenarios and the crowd plan, without a chain: deterministic per seed, the moves
their names promise, every step within the Oracle's bounds, and clear refusals."""

from __future__ import annotations

from dataclasses import replace

import pytest

from keepers.decide.prices import MAX_STEPS
from perpool import params
from perpool.prices import steps
from perpool.sim.crowd import plan_crowd, sim_address
from perpool.sim.run import judge
from perpool.sim.scenarios import (
    HOUR,
    KEEPERS,
    MARKETS,
    PPM,
    SCENARIOS,
    WARMUP_STEPS,
    ScenarioError,
    build,
    decimal_text,
    price_at,
    step_times,
    write_price_csv,
)

ALL = sorted(SCENARIOS)
JUMP_BPS = params.ORACLE_CONFIG["max_jump_bps"]
WINDOW_S = params.ORACLE_CONFIG["window"]
WINDOW_BPS = params.ORACLE_CONFIG["max_window_move_bps"]
START = {"ETH": 3_000 * 10**18, "BTC": 60_000 * 10**18}


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("short", [False, True])
def test_build__same_seed__same_scenario_and_crowd(name, short):
    a, b = build(name, 7, short), build(name, 7, short)
    assert a == b
    assert plan_crowd(a.crowd, 7) == plan_crowd(b.crowd, 7)


@pytest.mark.parametrize("name", ALL)
def test_build__other_seed__other_noise_same_shape(name):
    a, b = build(name, 1), build(name, 2)
    assert [s.dt for s in a.steps] == [s.dt for s in b.steps]
    assert [s.factors for s in a.steps] != [s.factors for s in b.steps]
    assert [t.address for t in plan_crowd(a.crowd, 1)] != [t.address for t in plan_crowd(b.crowd, 2)]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("short", [False, True])
def test_build__every_step_within_the_oracles_jump_and_window_bounds(name, short):
    """Full runs move within the jump bound (2 %) every step; `--short` runs compress the
    same path into fewer steps, so a step may need several pushes, which the price keeper
    steps through the bound one second apart (`split_large_moves`): at most its MAX_STEPS
    and at most the step's seconds."""
    sc = build(name, 3, short)
    for m in MARKETS:
        factors = [PPM] + [s.factors[m] for s in sc.steps]
        for step, before, after in zip(sc.steps, factors, factors[1:]):
            if not short:
                assert abs(after - before) * 10_000 <= before * JUMP_BPS, (name, m, before, after)
            assert len(steps(before, after, JUMP_BPS)) <= min(MAX_STEPS, step.dt), (name, m, before, after)
        # the cumulative window bound, from each step over the next hour of chain time
        times = [0] + step_times(sc, 0)
        for i, (t_i, f_i) in enumerate(zip(times, factors)):
            for t_j, f_j in zip(times[i + 1 :], factors[i + 1 :]):
                if t_j - t_i >= WINDOW_S:
                    break
                assert abs(f_j - f_i) * 10_000 <= f_i * WINDOW_BPS, (name, m, i)


def _last(sc, m):
    return sc.steps[-1].factors[m]


@pytest.mark.parametrize("short", [False, True])
def test_crash__falls_about_30_percent_over_minutes(short):
    sc = build("crash", 1, short)
    assert 0.67 * PPM <= _last(sc, "ETH") <= 0.73 * PPM
    drop = [s for s in sc.steps if s.label == "drop"]
    assert sum(s.dt for s in drop) <= 15 * 60  # minutes, not hours
    assert sc.crowd.long_share >= 0.7


@pytest.mark.parametrize("short", [False, True])
def test_squeeze__rallies_25_percent_into_shorts_with_an_adl_trigger_below_the_whales_profit(short):
    sc = build("squeeze", 1, short)
    assert 1.22 * PPM <= _last(sc, "ETH") <= 1.28 * PPM
    assert sc.crowd.long_share <= 0.25
    whale_size = sum(w.collateral_usd * w.leverage for w in sc.crowd.whales)
    # the whales' profit at +25 % against the pool is above the ADL trigger
    trigger = sc.risk_overrides["max_pnl_factor_for_adl_bps"]
    assert whale_size * 25 // 100 * 10_000 > trigger * sc.lp_usd


@pytest.mark.parametrize("short", [False, True])
def test_funding_spike__hours_of_chain_time_skewed_long_at_a_raised_funding_factor(short):
    sc = build("funding-spike", 1, short)
    assert sc.duration_s >= 6 * HOUR
    assert max(s.dt for s in sc.steps) < 1_800  # orders placed in a step do not expire before the next
    assert sc.crowd.long_share >= 0.9
    assert sc.market_overrides["funding_factor"] > params.MARKET_CONFIG["funding_factor"]


@pytest.mark.parametrize("name,keeper_name", [("oracle-lag", "prices"), ("keeper-outage", "liquidator")])
@pytest.mark.parametrize("short", [False, True])
def test_outages__stop_then_start_the_keeper(name, keeper_name, short):
    sc = build(name, 1, short)
    actions = [(i, a) for i, s in enumerate(sc.steps) for a in s.actions]
    assert [a for _, a in actions] == [f"stop:{keeper_name}", f"start:{keeper_name}"]
    (stop, _), (start, _) = actions
    assert stop >= WARMUP_STEPS and start > stop
    for _, action in actions:
        assert action.split(":")[1] in KEEPERS
    if name == "oracle-lag":
        # the outage is longer than the Oracle's staleness bound, and the price gaps
        assert sum(s.dt for s in sc.steps[stop:start]) > params.ORACLE_CONFIG["max_price_age"]
        gap = sc.steps[stop - 1].factors["ETH"] - sc.steps[start - 1].factors["ETH"]
        assert gap * 10_000 > sc.steps[stop - 1].factors["ETH"] * JUMP_BPS  # beyond one push


def test_build__unknown_name_or_misplaced_csv__clear_error(tmp_path):
    with pytest.raises(ScenarioError, match="unknown scenario 'flood'"):
        build("flood")
    with pytest.raises(ScenarioError, match="needs a CSV"):
        build("replay")
    with pytest.raises(ScenarioError, match="--csv is for the replay scenario"):
        build("crash", csv_path=tmp_path / "x.csv")


def test_replay__csv_path__steps_relative_to_the_first_price(tmp_path):
    path = tmp_path / "path.csv"
    path.write_text(
        "timestamp,market,price\n1000,ETH,1800\n1000,BTC,40000\n1060,ETH,1710\n1120,ETH,1620\n1120,BTC,36000\n"
    )
    sc = build("replay", 1, csv_path=path)
    replayed = sc.steps[WARMUP_STEPS:]
    assert [s.factors for s in replayed] == [
        {"ETH": PPM, "BTC": PPM},
        {"ETH": 950_000, "BTC": PPM},  # BTC keeps its last price
        {"ETH": 900_000, "BTC": 900_000},
    ]
    assert [s.dt for s in replayed][1:] == [60, 60]


@pytest.mark.parametrize(
    "text,message",
    [
        ("timestamp,market,price\n1000,ETH,abc\n", "not a decimal number"),
        ("timestamp,market,price\n1000,ETH\n", "expected timestamp,market,price"),
        ("timestamp,market,price\n1000,DOGE,1\n", "no rows for BTC or ETH"),
        ("timestamp,market,price\n1000,ETH,0\n", "zero price"),
    ],
)
def test_replay__bad_csv__refused_with_the_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message):
        build("replay", 1, csv_path=path)


def test_replay__missing_file__refused(tmp_path):
    with pytest.raises(ScenarioError, match="does not exist"):
        build("replay", 1, csv_path=tmp_path / "nope.csv")


def test_write_price_csv__exact_decimal_text_in_chain_time(tmp_path):
    sc = build("crash", 1, short=True)
    rows = write_price_csv(sc, START, 1_000, tmp_path / "p.csv")
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "timestamp,market,price"
    assert lines[1:3] == ["1000,BTC,60000", "1000,ETH,3000"]
    first = step_times(sc, 1_000)[0]
    assert lines[3] == f"{first},BTC,{decimal_text(rows[0]['BTC'])}"
    assert rows[0]["ETH"] == price_at(START["ETH"], sc.steps[0].factors["ETH"])
    assert decimal_text(2_900_500_000_000_000_000_000) == "2900.5"
    assert decimal_text(3_000 * 10**18) == "3000"


def test_plan_crowd__shares_sides_and_bounds():
    sc = build("crash", 5)
    crowd = plan_crowd(sc.crowd, 5)
    assert len(crowd) == sc.crowd.size
    longs = sum(t.is_long for t in crowd)
    assert longs == round(sc.crowd.size * sc.crowd.long_share)
    assert all(sc.crowd.min_collateral_usd <= t.collateral_usd <= sc.crowd.max_collateral_usd for t in crowd)
    assert all(sc.crowd.min_leverage * 10_000 <= t.leverage_bps <= sc.crowd.max_leverage * 10_000 + 1 for t in crowd)
    assert len({t.address for t in crowd}) == len(crowd)
    squeeze = build("squeeze", 5)
    whales = [t for t in plan_crowd(squeeze.crowd, 5) if t.whale]
    assert len(whales) == len(squeeze.crowd.whales) and all(w.is_long for w in whales)
    assert sim_address(5, "lp", 0) != sim_address(6, "lp", 0)


class _Events:
    def __init__(self, bad_debt):
        self.bad_debt = bad_debt


def _steps(first, last):
    return [{"share_price_wad": first}, {"share_price_wad": last}]


def test_judge__each_verdict_on_its_own_integers():
    sc = replace(build("crash", 1, short=True), max_lp_loss_pct=10.0, max_unhealthy_blocks=5)
    clean = judge(sc, _steps(10**18, 10**18), _Events([]), [1, 2], [])
    assert clean["passed"] and [c["passed"] for c in clean["checks"]] == [True, True, True]
    # an LP loss of exactly the limit passes, one wei more fails
    edge = judge(sc, _steps(10**18, 9 * 10**17), _Events([]), [], [])
    assert edge["checks"][0]["passed"]
    over = judge(sc, _steps(10**18, 9 * 10**17 - 1), _Events([]), [], [])
    assert not over["checks"][0]["passed"] and not over["passed"]
    # bad debt the insurance covered passes; any the LPs absorbed fails
    covered = {"insurance_usd": 5.0, "pool_usd": 0.0, "from_lps": 0}
    absorbed = {"insurance_usd": 5.0, "pool_usd": 1.0, "from_lps": 1_000_000}
    assert judge(sc, _steps(1, 1), _Events([covered]), [], [])["checks"][1]["passed"]
    assert not judge(sc, _steps(1, 1), _Events([covered, absorbed]), [], [])["checks"][1]["passed"]
    # the longest stretch counts liquidated positions and those still unhealthy at the end
    assert judge(sc, _steps(1, 1), _Events([]), [5], [])["checks"][2]["passed"]
    late = judge(sc, _steps(1, 1), _Events([]), [1], [{"blocks": 6}])
    assert not late["checks"][2]["passed"] and "1 still unhealthy" in late["checks"][2]["detail"]
