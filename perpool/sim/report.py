"""Render a simulation's series into a self-contained report folder.

The devnet simulation runs a market scenario (crash, squeeze, funding spike, oracle lag,
keeper outage, CSV replay) against the real contracts and keepers and measures it into a
*series* dict. `write_report(series, out_dir)` turns that dict into files; it is pure Python
(no chain access) and its output is byte-for-byte reproducible for the same input.

Files written into `out_dir` (created if missing)
--------------------------------------------------
- ``series.json``: the series exactly as given (``json.dumps(indent=1)``; key order kept).
- One PNG per plot, in this order (the HTML shows them in the same order):
  ``price.png`` (index price per market, % change since the first step),
  ``pool.png`` (pool value and LP share price, twin axes),
  ``open_interest.png`` (long and short OI summed over markets),
  ``rates.png`` (funding and borrowing rate per market, %/h),
  ``liquidations.png`` (count per step as bars, cumulative notional, cascades shaded),
  ``insurance.png`` (insurance fund and cumulative bad debt),
  ``adl.png`` (ADL events: time x score, sized by size; "no ADL" when none),
  ``latency.png`` (keeper latency histogram in blocks; "no liquidations" when none).
- ``index.html``: one page, no external resources (every PNG inlined as a base64 data URI,
  a small inline style, no script): header, summary, settings and totals, one section per
  plot with a caption, the ADL, largest-cascade and bad-debt tables, and last the verdict.

The series schema (version 1)
-----------------------------
Required keys: ``scenario``, ``steps``, ``verdict`` (a missing one raises ``ValueError``
naming it). Every other key is optional; missing lists render as empty. Times are Unix
seconds of chain time, amounts are USD floats, rates are fractions per hour::

    {
     "version": 1,
     "scenario": "crash", "seed": 7, "mode": "short" | "full", "chain_id": 31337,
     "markets": ["BTC", "ETH"],
     "settings": {...},   # free-form scenario parameters, shown as a key/value table
     "steps": [           # one per scenario step, in order
       {"step": 0, "block": 123, "time": 1700000000,
        "prices": {"ETH": 3000.0, "BTC": 60000.0},
        "pool_value_usd": 1000000.0, "share_price": 1.0, "lp_supply": 1000000.0,
        "insurance_usd": 0.0, "bad_debt_usd": 0.0,         # bad debt is cumulative
        "oi_long_usd": {"ETH": 0.0, ...}, "oi_short_usd": {"ETH": 0.0, ...},
        "funding_rate_per_h": {"ETH": 0.0, ...},           # positive: longs pay
        "borrowing_rate_per_h": {"ETH": 0.0, ...},
        "open_positions": 250, "unhealthy": 0,
        "liquidations": 0, "liquidated_usd": 0.0,          # during this step
        "adl_count": 0, "pending_orders": 3}
     ],
     "liquidations": [{"block", "time", "market", "account", "is_long", "size_usd",
                       "latency_blocks": int | None}],
     "cascades": [{"start_time", "end_time", "start_block", "end_block", "count",
                   "notional_usd"}],
     "adl": [{"block", "time", "market", "account", "size_usd", "score"}],
     "bad_debt": [{"block", "time", "amount_usd", "insurance_usd", "pool_usd"}],
     "keeper_latency_blocks": [2, 1, 3],   # if absent: the liquidations' latency_blocks
     "totals": {"liquidations", "liquidated_usd", "adl", "bad_debt_usd",
                "orders_executed", "orders_cancelled", "positions_opened", ...},
     "verdict": {"passed": bool,           # if absent: all checks passed
                 "checks": [{"name": "lp_loss", "passed": true, "detail": "..."}]}
    }

``markets`` defaults to the keys of the first step's ``prices``. Every string taken from the
series is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

Series = Mapping[str, Any]
Row = Sequence[str]

REQUIRED_KEYS = ("scenario", "steps", "verdict")

SERIES_FILE = "series.json"
INDEX_FILE = "index.html"
JSON_INDENT = 1

# Figures: rendered with a bare matplotlib Figure (Agg canvas, no pyplot global state, nothing
# to close); "Software" metadata off so identical input gives identical PNG bytes.
DPI = 100
FIGSIZE = (9.0, 3.2)
PNG_METADATA: dict[str, str | None] = {"Software": None}
PNG_DATA_URI = "data:image/png;base64,"

SECONDS_PER_HOUR = 3600
SECONDS_PER_MINUTE = 60
PERCENT = 100.0
HOURS_LABEL = "hours since start (chain time)"
X_MARGIN = 0.02  # of the run's span, either side of the time axis
WHOLE_TICK_FROM = 100.0  # USD ticks from here up show no decimals

SINGLE_POINT_MARKER = "o"  # a one-step series is still visible as points
BAR_WIDTH_FRACTION = 0.8  # of the median step spacing
DEFAULT_BAR_WIDTH_H = 1 / SECONDS_PER_MINUTE  # one minute, when there is a single step
CASCADE_SHADE_ALPHA = 0.15
CASCADE_COLOR = "tab:red"
ADL_MARKER_MIN = 20.0  # scatter marker area (pt^2) of the smallest ADL
ADL_MARKER_MAX = 300.0  # ... and of the largest
EMPTY_TEXT_SIZE = 14
LEGEND_FONT_SIZE = 8

LARGEST_CASCADES = 10
ACCOUNT_HEAD = 6  # "0x" + 4 hex digits
ACCOUNT_TAIL = 4
LARGE_NUMBER = 1000.0  # floats from here up are shown with two decimals and separators
SIGNIFICANT_DIGITS = 6

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 960px; color: #222; }
h1 { margin-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; }
p.caption { color: #555; margin-top: 0; }
.pass { color: #1a7f37; font-weight: bold; }
.fail { color: #cf222e; font-weight: bold; }
""".strip()


# ---------------------------------------------------------------------------------------------
# Entry point


def write_report(series: dict[str, Any], out_dir: Path) -> Path:
    """Write series.json, the plots and index.html into `out_dir`; return index.html's path."""
    _validate(series)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SERIES_FILE).write_text(json.dumps(series, indent=JSON_INDENT, sort_keys=False))
    images: list[tuple[Plot, bytes]] = []
    for plot in PLOTS:
        png = _render(plot.draw, series)
        (out_dir / plot.file).write_bytes(png)
        images.append((plot, png))
    index = out_dir / INDEX_FILE
    index.write_text(render_html(series, images), encoding="utf-8")
    return index


def _validate(series: Any) -> None:
    if not isinstance(series, Mapping):
        raise ValueError(f"series must be a dict, got {type(series).__name__}")
    for key in REQUIRED_KEYS:
        if key not in series:
            raise ValueError(f"series is missing the required key {key!r}")
    if not isinstance(series["steps"], list):
        raise ValueError("series key 'steps' must be a list")
    if not isinstance(series["verdict"], Mapping):
        raise ValueError("series key 'verdict' must be a dict")


# ---------------------------------------------------------------------------------------------
# Reading the series


def _steps(series: Series) -> list[Mapping[str, Any]]:
    return list(series["steps"])


def _list(series: Series, key: str) -> list[Mapping[str, Any]]:
    return list(series.get(key) or [])


def _markets(series: Series) -> list[str]:
    markets = series.get("markets")
    if markets:
        return [str(m) for m in markets]
    steps = _steps(series)
    return [str(m) for m in steps[0].get("prices", {})] if steps else []


def _start_time(series: Series) -> float:
    steps = _steps(series)
    return float(steps[0].get("time", 0)) if steps else 0.0


def _hours(series: Series, time: Any) -> float:
    return (float(time or 0) - _start_time(series)) / SECONDS_PER_HOUR


def _step_hours(series: Series) -> list[float]:
    return [_hours(series, s.get("time")) for s in _steps(series)]


def _value(value: Any) -> float:
    """A plotted number; a missing one (None: e.g. the pool cannot be priced while the
    Oracle is stale) is NaN, a gap in the line rather than a fall to zero."""
    return math.nan if value is None else float(value)


def _column(series: Series, key: str) -> list[float]:
    return [_value(s.get(key)) for s in _steps(series)]


def _market_column(series: Series, key: str, market: str) -> list[float]:
    return [_value((s.get(key) or {}).get(market)) for s in _steps(series)]


def _summed_column(series: Series, key: str) -> list[float]:
    return [float(sum((s.get(key) or {}).values())) for s in _steps(series)]


def _cumulative(values: Iterable[float]) -> list[float]:
    total, out = 0.0, []
    for v in values:
        total += v
        out.append(total)
    return out


def _latencies(series: Series) -> list[int]:
    if "keeper_latency_blocks" in series:
        raw = series.get("keeper_latency_blocks") or []
    else:
        raw = [liq.get("latency_blocks") for liq in _list(series, "liquidations")]
    return [int(v) for v in raw if v is not None]


def _cascades_by_size(series: Series) -> list[Mapping[str, Any]]:
    cascades = _list(series, "cascades")
    return sorted(cascades, key=lambda c: -float(c.get("notional_usd") or 0.0))


def _overall_passed(verdict: Mapping[str, Any]) -> bool:
    if "passed" in verdict:
        return bool(verdict["passed"])
    return all(bool(c.get("passed")) for c in verdict.get("checks") or [])


# ---------------------------------------------------------------------------------------------
# Plots


@dataclass(frozen=True)
class Plot:
    """One figure of the report: its file, section title, drawer and caption."""

    file: str
    title: str
    draw: Callable[[Figure, Series], None]
    caption: Callable[[Series], str]


def _render(draw: Callable[[Figure, Series], None], series: Series) -> bytes:
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    draw(fig, series)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata=PNG_METADATA)
    return buf.getvalue()


def _marker(series: Series) -> str | None:
    return SINGLE_POINT_MARKER if len(_steps(series)) == 1 else None


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes,
            fontsize=EMPTY_TEXT_SIZE, color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(*axes: Axes) -> None:
    handles, labels = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    if handles:
        axes[0].legend(handles, labels, loc="best", fontsize=LEGEND_FONT_SIZE)


def _usd_tick(value: float, _pos: Any = None) -> str:
    if abs(value) >= WHOLE_TICK_FROM:
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _usd_axis(ax: Axes, label: str) -> None:
    """A USD y axis: plain numbers with thousands separators, no offset or 1e6 factor."""
    ax.yaxis.set_major_formatter(FuncFormatter(_usd_tick))
    ax.set_ylabel(label)


def _time_axis(ax: Axes, series: Series) -> None:
    """Hours since the first step, the same range on every plot."""
    ax.set_xlabel(HOURS_LABEL)
    hours = _step_hours(series)
    span = max(hours, default=0.0) - min(hours, default=0.0)
    if span > 0:
        ax.set_xlim(min(hours) - span * X_MARGIN, max(hours) + span * X_MARGIN)


def _draw_price(fig: Figure, series: Series) -> None:
    ax = fig.add_subplot()
    x = _step_hours(series)
    drawn = False
    for market in _markets(series):
        prices = _market_column(series, "prices", market)
        if not prices or prices[0] == 0:
            continue
        rel = [(p / prices[0] - 1) * PERCENT for p in prices]
        ax.plot(x, rel, marker=_marker(series), label=f"{market} (start {prices[0]:,.2f})")
        drawn = True
    ax.axhline(0, color="gray", linewidth=0.5)
    _time_axis(ax, series)
    ax.set_ylabel("index price vs start (%)")
    if not drawn:
        _empty(ax, "no prices")
    _legend(ax)


def _draw_pool(fig: Figure, series: Series) -> None:
    ax = fig.add_subplot()
    x = _step_hours(series)
    ax.plot(x, _column(series, "pool_value_usd"), color="tab:blue", marker=_marker(series),
            linewidth=3, alpha=0.6, label="pool value (USD)")
    _time_axis(ax, series)
    _usd_axis(ax, "pool value (USD)")
    twin = ax.twinx()
    # the two lines coincide while the LP supply is constant: the share price is dashed on top
    twin.plot(x, _column(series, "share_price"), color="tab:orange", marker=_marker(series),
              linestyle="--", label="LP share price")
    twin.set_ylabel("LP share price")
    _legend(ax, twin)


def _draw_open_interest(fig: Figure, series: Series) -> None:
    ax = fig.add_subplot()
    x = _step_hours(series)
    ax.plot(x, _summed_column(series, "oi_long_usd"), color="tab:green", marker=_marker(series),
            label="long OI")
    ax.plot(x, _summed_column(series, "oi_short_usd"), color="tab:red", marker=_marker(series),
            label="short OI")
    _time_axis(ax, series)
    _usd_axis(ax, "open interest, all markets (USD)")
    _legend(ax)


def _draw_rates(fig: Figure, series: Series) -> None:
    ax = fig.add_subplot()
    x = _step_hours(series)
    for i, market in enumerate(_markets(series)):
        color = f"C{i}"
        funding = [v * PERCENT for v in _market_column(series, "funding_rate_per_h", market)]
        borrowing = [v * PERCENT for v in _market_column(series, "borrowing_rate_per_h", market)]
        ax.plot(x, funding, color=color, marker=_marker(series), label=f"{market} funding")
        ax.plot(x, borrowing, color=color, linestyle="--", marker=_marker(series),
                label=f"{market} borrowing")
    ax.axhline(0, color="gray", linewidth=0.5)
    _time_axis(ax, series)
    ax.set_ylabel("rate (% per hour)")
    _legend(ax)


def _bar_width(hours: Sequence[float]) -> float:
    gaps = [b - a for a, b in zip(hours, hours[1:]) if b > a]
    return statistics.median(gaps) * BAR_WIDTH_FRACTION if gaps else DEFAULT_BAR_WIDTH_H


def _draw_liquidations(fig: Figure, series: Series) -> None:
    ax = fig.add_subplot()
    x = _step_hours(series)
    for i, cascade in enumerate(_list(series, "cascades")):
        start = _hours(series, cascade.get("start_time"))
        end = _hours(series, cascade.get("end_time"))
        label = "cascade" if i == 0 else None
        if end > start:
            ax.axvspan(start, end, color=CASCADE_COLOR, alpha=CASCADE_SHADE_ALPHA, label=label)
        else:
            ax.axvline(start, color=CASCADE_COLOR, alpha=CASCADE_SHADE_ALPHA, label=label)
    ax.bar(x, _column(series, "liquidations"), width=_bar_width(x), color="tab:gray",
           label="liquidations per step")
    _time_axis(ax, series)
    ax.set_ylabel("liquidations per step")
    twin = ax.twinx()
    twin.plot(x, _cumulative(_column(series, "liquidated_usd")), color="tab:red",
              marker=_marker(series), label="cumulative liquidated (USD)")
    _usd_axis(twin, "cumulative liquidated (USD)")
    _legend(ax, twin)


def _draw_insurance(fig: Figure, series: Series) -> None:
    ax = fig.add_subplot()
    x = _step_hours(series)
    ax.plot(x, _column(series, "insurance_usd"), color="tab:blue", marker=_marker(series),
            label="insurance fund")
    _time_axis(ax, series)
    _usd_axis(ax, "insurance fund (USD)")
    # its own scale: bad debt is usually tiny next to the fund and would read as zero
    twin = ax.twinx()
    twin.plot(x, _column(series, "bad_debt_usd"), color="tab:red", marker=_marker(series),
              label="cumulative bad debt (right)")
    _usd_axis(twin, "cumulative bad debt (USD)")
    _legend(ax, twin)


def _marker_sizes(sizes: Sequence[float]) -> list[float]:
    largest = max(sizes, default=0.0)
    if largest <= 0:
        return [ADL_MARKER_MIN for _ in sizes]
    return [ADL_MARKER_MIN + (ADL_MARKER_MAX - ADL_MARKER_MIN) * s / largest for s in sizes]


def _draw_adl(fig: Figure, series: Series) -> None:
    ax = fig.add_subplot()
    events = _list(series, "adl")
    ax.set_ylabel("ADL score")
    _time_axis(ax, series)
    if not events:
        _empty(ax, "no ADL")
        return
    markets = _markets(series)
    for market in markets + sorted({str(e.get("market")) for e in events} - set(markets)):
        mine = [e for e in events if str(e.get("market")) == market]
        if not mine:
            continue
        sizes = [float(e.get("size_usd") or 0.0) for e in mine]
        ax.scatter([_hours(series, e.get("time")) for e in mine],
                   [float(e.get("score") or 0.0) for e in mine],
                   s=_marker_sizes(sizes), alpha=0.7, label=market)
    _legend(ax)


def _draw_latency(fig: Figure, series: Series) -> None:
    ax = fig.add_subplot()
    latencies = _latencies(series)
    ax.set_xlabel("keeper latency (blocks from the price push to the liquidation)")
    ax.set_ylabel("liquidations")
    if not latencies:
        _empty(ax, "no liquidations")
        return
    lo, hi = min(latencies), max(latencies)
    bins = [b - 0.5 for b in range(lo, hi + 2)]  # one bar per whole block
    ax.hist(latencies, bins=bins, color="tab:purple", rwidth=BAR_WIDTH_FRACTION)
    ax.set_xticks(range(lo, hi + 1))


def _caption_price(series: Series) -> str:
    return "Index price per market, in % change from its price at the first step."


def _caption_pool(series: Series) -> str:
    shares = [v for v in _column(series, "share_price") if not math.isnan(v)]
    change = _pct_change(shares[0], shares[-1]) if shares else None
    return f"Pool value (left) and LP share price (right); share price {_fmt_pct(change)}."


def _caption_oi(series: Series) -> str:
    return "Open interest long and short, summed over all markets, in USD."


def _caption_rates(series: Series) -> str:
    return ("Funding rate (solid; positive: longs pay) and borrowing rate (dashed) "
            "per market, in % per hour.")


def _caption_liquidations(series: Series) -> str:
    cascades = len(_list(series, "cascades"))
    return (f"Liquidations per step (bars) and cumulative liquidated notional (line); "
            f"{cascades} cascade(s) shaded.")


def _caption_insurance(series: Series) -> str:
    return "Insurance fund balance (left) and cumulative bad debt (right, own scale), in USD."


def _caption_adl(series: Series) -> str:
    return f"{len(_list(series, 'adl'))} ADL event(s): time against score, marker sized by size."


def _caption_latency(series: Series) -> str:
    return ("Blocks from the price push that made a position liquidatable to its liquidation "
            f"({len(_latencies(series))} measured).")


PLOTS: tuple[Plot, ...] = (
    Plot("price.png", "Index prices", _draw_price, _caption_price),
    Plot("pool.png", "Pool value and LP share price", _draw_pool, _caption_pool),
    Plot("open_interest.png", "Open interest", _draw_open_interest, _caption_oi),
    Plot("rates.png", "Funding and borrowing rates", _draw_rates, _caption_rates),
    Plot("liquidations.png", "Liquidations", _draw_liquidations, _caption_liquidations),
    Plot("insurance.png", "Insurance fund and bad debt", _draw_insurance, _caption_insurance),
    Plot("adl.png", "Auto-deleveraging", _draw_adl, _caption_adl),
    Plot("latency.png", "Keeper latency", _draw_latency, _caption_latency),
)


# ---------------------------------------------------------------------------------------------
# Formatting


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt_number(value: float) -> str:
    if abs(value) >= LARGE_NUMBER:
        return f"{value:,.2f}"
    return f"{value:.{SIGNIFICANT_DIGITS}g}"


def _fmt_value(value: Any) -> str:
    """A settings/totals value as plain text (escape it afterwards)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return _fmt_number(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def _fmt_usd(value: Any) -> str:
    return f"{float(value or 0.0):,.2f}"


def _fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f} %"


def _pct_change(start: float, end: float) -> float | None:
    return None if start == 0 else (end / start - 1) * PERCENT


def _fmt_duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), SECONDS_PER_HOUR)
    minutes, secs = divmod(rest, SECONDS_PER_MINUTE)
    return f"{hours} h {minutes:02d} min {secs:02d} s ({int(seconds):,} s)"


def _short_account(account: Any) -> str:
    text = str(account)
    if len(text) <= ACCOUNT_HEAD + ACCOUNT_TAIL + 1:
        return text
    return f"{text[:ACCOUNT_HEAD]}…{text[-ACCOUNT_TAIL:]}"


# ---------------------------------------------------------------------------------------------
# HTML


def _table(headers: Row, rows: Iterable[Row], numeric: Sequence[int] = ()) -> str:
    """A table whose cells are already-escaped HTML; `numeric` columns align right."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table>\n<tr>{head}</tr>\n" + "\n".join(body) + "\n</table>"


def _key_values(values: Any) -> str:
    if not isinstance(values, Mapping):  # free-form: a non-dict is shown as one value
        values = {"value": values}
    rows = [(_esc(k), _esc(_fmt_value(v))) for k, v in values.items()]
    return _table(("key", "value"), rows)


def _section(ident: str, title: str, body: str) -> str:
    return f'<section id="{ident}">\n<h2>{_esc(title)}</h2>\n{body}\n</section>'


def _header(series: Series) -> str:
    steps = _steps(series)
    covered = float(steps[-1].get("time", 0)) - _start_time(series) if steps else 0.0
    blocks = f"{steps[0].get('block')}–{steps[-1].get('block')}" if steps else "n/a"
    fields = (
        ("scenario", series["scenario"]),
        ("seed", series.get("seed", "n/a")),
        ("mode", series.get("mode", "n/a")),
        ("chain id", series.get("chain_id", "n/a")),
        ("steps", len(steps)),
        ("blocks", blocks),
        ("chain time covered", _fmt_duration(covered)),
    )
    items = "\n".join(f"<li><b>{k}:</b> {_esc(v)}</li>" for k, v in fields)
    return f"<header>\n<h1>{_title(series)}</h1>\n<ul>\n{items}\n</ul>\n</header>"


def _range_row(label: str, values: Sequence[float], fmt: Callable[[float], str]) -> Row:
    start, end = values[0], values[-1]
    text = (f"{fmt(start)} → {fmt(end)} ({_fmt_pct(_pct_change(start, end))}; "
            f"min {fmt(min(values))}, max {fmt(max(values))})")
    return (_esc(label), _esc(text))


def _summary_rows(series: Series) -> list[Row]:
    steps = _steps(series)
    rows: list[Row] = []
    if steps:
        for market in _markets(series):
            rows.append(_range_row(f"{market} price", _market_column(series, "prices", market),
                                   _fmt_usd))
        rows.append(_range_row("pool value (USD)", _column(series, "pool_value_usd"), _fmt_usd))
        rows.append(_range_row("LP share price", _column(series, "share_price"),
                               lambda v: f"{v:.6f}"))
        rows.append(_range_row("insurance fund (USD)", _column(series, "insurance_usd"),
                               _fmt_usd))
        rows.append(("peak long / short OI (USD)", _esc(
            f"{_fmt_usd(max(_summed_column(series, 'oi_long_usd')))} / "
            f"{_fmt_usd(max(_summed_column(series, 'oi_short_usd')))}")))
        rows.append(("max unhealthy positions", _esc(max(int(s.get("unhealthy") or 0)
                                                         for s in steps))))
        rows.append(("bad debt at the end (USD)", _esc(_fmt_usd(steps[-1].get("bad_debt_usd")))))
    liquidations = _list(series, "liquidations")
    notional = sum(float(q.get("size_usd") or 0.0) for q in liquidations)
    rows.append(("liquidations", _esc(f"{len(liquidations):,} ({_fmt_usd(notional)} USD)")))
    cascades = _cascades_by_size(series)
    if cascades:
        top = cascades[0]
        count, size = int(top.get("count") or 0), _fmt_usd(top.get("notional_usd"))
        rows.append(("largest cascade", _esc(f"{count:,} liquidations, {size} USD")))
    rows.append(("ADL events", _esc(len(_list(series, "adl")))))
    latencies = _latencies(series)
    if latencies:
        rows.append(("keeper latency (blocks)", _esc(
            f"median {statistics.median(latencies):g}, max {max(latencies)}")))
    return rows


def _account_cell(account: Any) -> str:
    """The account's short form, the full address as a tooltip."""
    return f'<span title="{_esc(account)}">{_esc(_short_account(account))}</span>'


def _adl_table(series: Series) -> str:
    events = _list(series, "adl")
    if not events:
        return "<p>No ADL events.</p>"
    rows = [
        (
            _esc(e.get("block")),
            _esc(e.get("market")),
            _account_cell(e.get("account")),
            _esc(_fmt_usd(e.get("size_usd"))),
            _esc(f"{float(e.get('score') or 0.0):.4f}"),
        )
        for e in events
    ]
    return _table(("block", "market", "account", "size (USD)", "score"), rows, numeric=(0, 3, 4))


def _cascade_table(series: Series) -> str:
    cascades = _cascades_by_size(series)[:LARGEST_CASCADES]
    if not cascades:
        return "<p>No liquidation cascades.</p>"
    rows = [
        (
            _esc(f"{c.get('start_block')}–{c.get('end_block')}"),
            _esc(f"{_hours(series, c.get('start_time')):.2f}"),
            _esc(f"{float(c.get('end_time') or 0) - float(c.get('start_time') or 0):,.0f}"),
            _esc(c.get("count")),
            _esc(_fmt_usd(c.get("notional_usd"))),
        )
        for c in cascades
    ]
    headers = ("blocks", "start (h)", "duration (s)", "liquidations", "notional (USD)")
    return _table(headers, rows, numeric=(1, 2, 3, 4))


def _bad_debt_table(series: Series) -> str:
    entries = _list(series, "bad_debt")
    if not entries:
        return "<p>No bad debt.</p>"
    rows = [
        (
            _esc(b.get("block")),
            _esc(_fmt_usd(b.get("amount_usd"))),
            _esc(_fmt_usd(b.get("insurance_usd"))),
            _esc(_fmt_usd(b.get("pool_usd"))),
        )
        for b in entries
    ]
    headers = ("block", "amount (USD)", "from insurance (USD)", "from pool (USD)")
    return _table(headers, rows, numeric=(0, 1, 2, 3))


def _verdict_label(passed: bool) -> str:
    return '<span class="pass">PASS</span>' if passed else '<span class="fail">FAIL</span>'


def _verdict(series: Series) -> str:
    verdict = series["verdict"]
    rows = [
        (_verdict_label(bool(c.get("passed"))), _esc(c.get("name", "")), _esc(c.get("detail", "")))
        for c in verdict.get("checks") or []
    ]
    overall = f'<p id="overall">Overall: {_verdict_label(_overall_passed(verdict))}</p>'
    table = _table(("result", "check", "detail"), rows) if rows else "<p>No checks.</p>"
    return _section("verdict", "Verdict", f"{table}\n{overall}")


def _plot_section(plot: Plot, png: bytes, series: Series) -> str:
    data = base64.b64encode(png).decode("ascii")
    ident = "plot-" + plot.file.removesuffix(".png")
    body = (f'<img alt="{_esc(plot.title)}" src="{PNG_DATA_URI}{data}">\n'
            f'<p class="caption">{_esc(plot.caption(series))}</p>')
    return _section(ident, plot.title, body)


def _title(series: Series) -> str:
    seed = series.get("seed", "n/a")
    return f"perpool simulation: {_esc(series['scenario'])} (seed {_esc(seed)})"


def render_html(series: Series, images: Sequence[tuple[Plot, bytes]]) -> str:
    """The report page for `series`, with `images` (plot, PNG bytes) inlined in order."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_title(series)}</title>",
        f"<style>\n{STYLE}\n</style>",
        "</head>",
        "<body>",
        _header(series),
        _section("summary", "Summary", _table(("figure", "value"), _summary_rows(series))),
    ]
    if series.get("settings"):
        parts.append(_section("settings", "Settings", _key_values(series["settings"])))
    if series.get("totals"):
        parts.append(_section("totals", "Totals", _key_values(series["totals"])))
    parts += [_plot_section(plot, png, series) for plot, png in images]
    parts += [
        _section("adl-events", "ADL events", _adl_table(series)),
        _section("cascades", f"Largest liquidation cascades (top {LARGEST_CASCADES})",
                 _cascade_table(series)),
        _section("bad-debt", "Bad debt", _bad_debt_table(series)),
        _verdict(series),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"
