"""The simulation report renderer: files, inlined images, escaping, empty states, determinism.

Pure Python, no chain: run with plain pytest (see perpool/sim/report.py for the schema).
"""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from perpool.sim import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIN_PNG_BYTES = 5_000  # a 900x320 plot with axes and text is well above this
MAX_PNG_BYTES = 500_000

START_TIME = 1_700_000_000
START_BLOCK = 100
STEP_SECONDS = 600
BLOCKS_PER_STEP = 50
N_STEPS = 40
CRASH_FROM, CRASH_TO = 5, 25  # steps over which prices fall
CRASH = 0.30
ETH_CRASH = 0.36  # ETH falls harder than BTC
LIQUIDATION_STEPS = range(15, 24)
CASCADE_STEPS = (17, 20)
START_PRICES = {"BTC": 60_000.0, "ETH": 3_000.0}
HOSTILE_ACCOUNT = "0x<script>alert('x')</script>&\"1234"

PLOT_FILES = [plot.file for plot in report.PLOTS]
IMG_RE = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _crash_factor(step: int, depth: float = CRASH) -> float:
    if step <= CRASH_FROM:
        return 1.0
    done = min(step, CRASH_TO) - CRASH_FROM
    return 1.0 - depth * done / (CRASH_TO - CRASH_FROM)


def _liquidations_at(step: int) -> int:
    if step not in LIQUIDATION_STEPS:
        return 0
    return 4 if CASCADE_STEPS[0] <= step <= CASCADE_STEPS[1] else 1


def _step(i: int, liquidated_before: float) -> dict[str, Any]:
    f = _crash_factor(i)
    n_liq = _liquidations_at(i)
    oi = 400_000.0 * (1 - 0.02 * sum(_liquidations_at(j) for j in range(i + 1)))
    return {
        "step": i,
        "block": START_BLOCK + BLOCKS_PER_STEP * i,
        "time": START_TIME + STEP_SECONDS * i,
        "prices": {"BTC": START_PRICES["BTC"] * f,
                   "ETH": START_PRICES["ETH"] * _crash_factor(i, ETH_CRASH)},
        "pool_value_usd": 1_000_000.0 * (1 + 0.1 * (1 - f)),
        "share_price": 1.0 + 0.1 * (1 - f),
        "lp_supply": 1_000_000.0,
        "insurance_usd": 50_000.0 - (12.3 if i >= 21 else 0.0) + 10.0 * liquidated_before / 1e4,
        "bad_debt_usd": 12.3 if i >= 21 else 0.0,
        "oi_long_usd": {"BTC": oi, "ETH": oi / 2},
        "oi_short_usd": {"BTC": 300_000.0, "ETH": 0.0},  # a market side with zero OI
        "funding_rate_per_h": {"BTC": 0.0001 * f, "ETH": -0.00005},
        "borrowing_rate_per_h": {"BTC": 0.00002, "ETH": 0.00003},
        "open_positions": 250 - i,
        "unhealthy": n_liq,
        "liquidations": n_liq,
        "liquidated_usd": 10_000.0 * n_liq,
        "adl_count": 1 if i == 22 else 0,
        "pending_orders": i % 4,
    }


def make_series() -> dict[str, Any]:
    """40 steps of a 30 % crash: liquidations, one cascade, one ADL, one bad debt, a FAIL."""
    steps, liquidated = [], 0.0
    for i in range(N_STEPS):
        steps.append(_step(i, liquidated))
        liquidated += steps[-1]["liquidated_usd"]
    liquidations = [
        {
            "block": s["block"] + k,
            "time": s["time"] + k,
            "market": "ETH" if k % 2 else "BTC",
            "account": f"0x{(s['step'] * 16 + k):040x}",
            "is_long": True,
            "size_usd": 10_000.0,
            "latency_blocks": None if k == 3 else 1 + k,
        }
        for s in steps
        for k in range(s["liquidations"])
    ]
    first, last = steps[CASCADE_STEPS[0]], steps[CASCADE_STEPS[1]]
    return {
        "version": 1,
        "scenario": "crash",
        "seed": 7,
        "mode": "short",
        "chain_id": 31337,
        "markets": ["BTC", "ETH"],
        "settings": {"crash": CRASH, "steps": N_STEPS, "note": "<b>bold</b>", "traders": 250},
        "steps": steps,
        "liquidations": liquidations,
        "cascades": [
            {
                "start_time": first["time"],
                "end_time": last["time"],
                "start_block": first["block"],
                "end_block": last["block"],
                "count": 16,
                "notional_usd": 160_000.0,
            }
        ],
        "adl": [
            {
                "block": steps[22]["block"],
                "time": steps[22]["time"],
                "market": "ETH",
                "account": HOSTILE_ACCOUNT,
                "size_usd": 50_000.0,
                "score": 0.42,
            }
        ],
        "bad_debt": [
            {
                "block": steps[21]["block"],
                "time": steps[21]["time"],
                "amount_usd": 12.3,
                "insurance_usd": 12.3,
                "pool_usd": 0.0,
            }
        ],
        "keeper_latency_blocks": [
            q["latency_blocks"] for q in liquidations if q["latency_blocks"] is not None
        ],
        "totals": {
            "liquidations": len(liquidations),
            "liquidated_usd": liquidated,
            "adl": 1,
            "bad_debt_usd": 12.3,
            "orders_executed": 300,
            "orders_cancelled": 2,
            "positions_opened": 280,
        },
        "verdict": {
            "passed": False,
            "checks": [
                {"name": "lp_loss", "passed": True, "detail": "LP share price +3 % (limit -10 %)"},
                {"name": "insurance", "passed": True, "detail": "insurance fund never exhausted"},
                {
                    "name": "unhealthy",
                    "passed": False,
                    "detail": "a position stayed unhealthy 14 blocks (limit < 5)",
                },
            ],
        },
    }


def minimal_series() -> dict[str, Any]:
    """One step, no liquidations, no ADL, no optional keys."""
    series = make_series()
    for key in ("settings", "totals", "cascades", "liquidations", "adl", "bad_debt",
                "keeper_latency_blocks", "markets"):
        del series[key]
    series["steps"] = [_step(0, 0.0)]
    series["verdict"] = {"passed": True, "checks": [{"name": "lp_loss", "passed": True,
                                                    "detail": "ok"}]}
    return series


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    series = make_series()
    out = tmp_path_factory.mktemp("report") / "nested" / "out"  # created by write_report
    index = report.write_report(series, out)
    return series, index


@pytest.fixture(scope="module")
def minimal_rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return report.write_report(minimal_series(), tmp_path_factory.mktemp("minimal"))


def _html(index: Path) -> str:
    return index.read_text(encoding="utf-8")


def test_writes_every_file(rendered: tuple[dict[str, Any], Path]) -> None:
    _, index = rendered
    assert index.name == "index.html" and index.is_file()
    out = index.parent
    assert (out / "series.json").is_file()
    assert PLOT_FILES == [
        "price.png", "pool.png", "open_interest.png", "rates.png",
        "liquidations.png", "insurance.png", "adl.png", "latency.png",
    ]
    for name in PLOT_FILES:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert MIN_PNG_BYTES < len(data) < MAX_PNG_BYTES, (name, len(data))


def test_html_inlines_every_png_in_order(rendered: tuple[dict[str, Any], Path]) -> None:
    _, index = rendered
    images = IMG_RE.findall(_html(index))
    assert len(images) == len(PLOT_FILES) == 8
    for name, data in zip(PLOT_FILES, images):
        assert base64.b64decode(data) == (index.parent / name).read_bytes(), name


def test_html_is_self_contained(rendered: tuple[dict[str, Any], Path]) -> None:
    _, index = rendered
    page = _html(index)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower()
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == 8 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "url(" not in page and "@import" not in page


def test_html_header_summary_and_tables(rendered: tuple[dict[str, Any], Path]) -> None:
    series, index = rendered
    page = _html(index)
    assert "perpool simulation: crash (seed 7)" in page
    for text in ("short", "31337", "6 h 30 min 00 s (23,400 s)", "100–2050"):
        assert text in page, text
    assert "60,000.00 → 42,000.00 (-30.00 %" in page  # BTC price in the summary
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page  # settings escaped
    assert "orders_executed" in page  # totals table
    adl = page[page.index('id="adl-events"'):page.index('id="cascades"')]
    assert "50,000.00" in adl and "0.4200" in adl and str(series["adl"][0]["block"]) in adl
    cascades = page[page.index('id="cascades"'):page.index('id="bad-debt"')]
    assert "160,000.00" in cascades and "950–1100" in cascades
    # every plot's section has a caption, in the fixed order
    positions = [page.index(f'id="plot-{name[:-4]}"') for name in PLOT_FILES]
    assert positions == sorted(positions)
    assert page.count('<p class="caption">') == len(PLOT_FILES)


def test_verdict_is_the_last_section_and_fails(rendered: tuple[dict[str, Any], Path]) -> None:
    _, index = rendered
    page = _html(index)
    last = page.rindex("<section")
    assert page[last:].startswith('<section id="verdict">')
    verdict = page[last:]
    rows = re.findall(r"<tr>(.*?)</tr>", verdict)
    failing = [r for r in rows if "unhealthy" in r]
    assert len(failing) == 1 and ">FAIL<" in failing[0]
    assert "14 blocks (limit &lt; 5)" in failing[0]
    assert sum(">PASS<" in r for r in rows) == 2
    assert re.search(r'Overall: <span class="fail">FAIL</span>', verdict)


def test_hostile_account_is_escaped(rendered: tuple[dict[str, Any], Path]) -> None:
    _, index = rendered
    page = _html(index)
    assert "<script" not in page
    assert html_escaped(HOSTILE_ACCOUNT) in page  # full address in the tooltip


def html_escaped(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#x27;"))


def test_series_json_round_trips(rendered: tuple[dict[str, Any], Path]) -> None:
    series, index = rendered
    text = (index.parent / "series.json").read_text()
    assert json.loads(text) == series
    assert text == json.dumps(series, indent=1)
    assert '"chain_id": 31337,' in text  # ints stay ints


def test_rendering_twice_gives_identical_files(
    rendered: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    series, index = rendered
    again = report.write_report(copy.deepcopy(series), tmp_path)
    for name in ["index.html", "series.json", *PLOT_FILES]:
        assert (tmp_path / name).read_bytes() == (index.parent / name).read_bytes(), name
    assert again == tmp_path / "index.html"


def test_does_not_modify_the_series(rendered: tuple[dict[str, Any], Path]) -> None:
    series, _ = rendered
    assert series == make_series()


def test_empty_states_render(minimal_rendered: Path) -> None:
    page = _html(minimal_rendered)
    assert len(IMG_RE.findall(page)) == 8
    for name in PLOT_FILES:
        assert (minimal_rendered.parent / name).read_bytes().startswith(PNG_MAGIC)
    assert "No ADL events." in page and "No liquidation cascades." in page
    assert 'id="settings"' not in page and 'id="totals"' not in page
    assert "0 h 00 min 00 s (0 s)" in page
    assert re.search(r'Overall: <span class="pass">PASS</span>', page)


def test_empty_steps_and_checks_render(tmp_path: Path) -> None:
    series = minimal_series()
    series["steps"] = []
    series["verdict"] = {"checks": []}  # no "passed": derived from the (zero) checks
    page = _html(report.write_report(series, tmp_path))
    assert len(IMG_RE.findall(page)) == 8 and "No checks." in page


def test_empty_state_pngs_differ_from_data_pngs(
    rendered: tuple[dict[str, Any], Path], minimal_rendered: Path
) -> None:
    """The "no ADL" / "no liquidations" frames are drawn, not the data plots."""
    _, index = rendered
    for name in ("adl.png", "latency.png"):
        empty = (minimal_rendered.parent / name).read_bytes()
        assert empty != (index.parent / name).read_bytes()


@pytest.mark.parametrize("key", report.REQUIRED_KEYS)
def test_missing_required_key_raises(key: str, tmp_path: Path) -> None:
    series = minimal_series()
    del series[key]
    with pytest.raises(ValueError, match=key):
        report.write_report(series, tmp_path)
    assert not (tmp_path / "index.html").exists()
