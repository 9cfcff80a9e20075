"""Price sources behind one interface: a seeded random walk with jumps (devnets, tests), a
CSV replay (scenarios, backtests) and an HTTP JSON endpoint (a real feed).

Every source answers `read()` with a `Quote` (WAD price, unix observation time) per
market. Prices are integers from end to end: decimal text is converted with `Decimal`,
never through a float. A source that cannot answer raises `SourceError` with a message
that says which source and why; the pusher never pushes from it.
"""

from __future__ import annotations

import bisect
import csv
import json
import random
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import requests

from keepers.decide.prices import BPS, Quote

Clock = Callable[[], int]  # unix seconds: wall time, or the chain's for tests and devnets

__all__ = [
    "Clock",
    "CsvReplay",
    "HttpJson",
    "PriceSource",
    "Quote",
    "RandomWalk",
    "SourceError",
    "to_wad",
]


class SourceError(RuntimeError):
    """A source that cannot answer now (unreachable, bad payload, bad file)."""


class PriceSource(Protocol):
    def markets(self) -> list[str]:
        """The market names this source prices."""
        ...

    def read(self) -> dict[str, Quote]:
        """The latest quote per market (markets with nothing to say are left out)."""
        ...


def to_wad(text: Any, where: str = "price") -> int:
    """An exact WAD integer from decimal text ("3000.5") or a JSON number parsed as
    `Decimal`/`int`. Refuses floats, booleans, non-finite values, negatives and more than
    18 decimals rather than round."""
    if isinstance(text, bool) or isinstance(text, float):
        raise SourceError(f"{where}: {text!r} is not a decimal string (floats are refused)")
    try:
        value = Decimal(text) if not isinstance(text, Decimal) else text
    except (InvalidOperation, TypeError, ValueError):
        raise SourceError(f"{where}: {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise SourceError(f"{where}: {text!r} is not a finite number")
    if value < 0:
        raise SourceError(f"{where}: {text!r} is negative")
    # exact integer arithmetic on the digits (Decimal's own ops round at 28 digits)
    _sign, digits, exponent = value.as_tuple()
    mantissa = int("".join(map(str, digits)) or "0")
    shift = int(exponent) + 18
    if shift >= 0:
        return mantissa * 10**shift
    whole, rest = divmod(mantissa, 10**-shift)
    if rest:
        raise SourceError(f"{where}: {text!r} has more than 18 decimals")
    return whole


def _to_seconds(value: Any, where: str) -> int:
    if isinstance(value, bool) or isinstance(value, float):
        raise SourceError(f"{where}: {value!r} is not an integer timestamp")
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, int) else Decimal(value)
    except InvalidOperation:
        raise SourceError(f"{where}: {value!r} is not an integer timestamp") from None
    if not number.is_finite() or number != number.to_integral_value() or number < 0:
        raise SourceError(f"{where}: {value!r} is not an integer timestamp")
    return int(number)


# ---------------------------------------------------------------- random walk


class RandomWalk:
    """A seeded random walk per market: each `read()` moves every market (in name order)
    by a uniform whole number of bps in [-step_bps, step_bps], and every `jump_every`-th
    read also by +/- `jump_bps`. The same seed and start give the same prices read after
    read; the arithmetic is on ints (a price never falls below 1 wei of USD). Quotes are
    observed at `clock()`."""

    def __init__(
        self,
        markets: Mapping[str, int],
        seed: int,
        clock: Clock,
        step_bps: int = 20,
        jump_bps: int = 500,
        jump_every: int = 100,
    ) -> None:
        if not markets:
            raise ValueError("RandomWalk needs at least one market")
        if any(p <= 0 for p in markets.values()):
            raise ValueError("RandomWalk start prices must be positive")
        if not 0 <= step_bps < BPS or not 0 <= jump_bps < BPS or jump_every < 0:
            raise ValueError("step_bps and jump_bps must be in [0, 10000), jump_every >= 0")
        self.prices: dict[str, int] = dict(sorted(markets.items()))
        self.step_bps, self.jump_bps, self.jump_every = step_bps, jump_bps, jump_every
        self.clock = clock
        self.reads = 0
        self._rng = random.Random(seed)

    def markets(self) -> list[str]:
        return list(self.prices)

    def read(self) -> dict[str, Quote]:
        self.reads += 1
        jump = self.jump_every > 0 and self.reads % self.jump_every == 0
        for market, price in self.prices.items():
            delta = self._rng.randint(-self.step_bps, self.step_bps)
            if jump:
                delta += self.jump_bps if self._rng.random() < 0.5 else -self.jump_bps
            change = price * abs(delta) // BPS  # rounded towards zero: a move never exceeds its bps
            self.prices[market] = max(price + change if delta > 0 else price - change, 1)
        now = int(self.clock())
        return {m: Quote(p, now) for m, p in self.prices.items()}


# ---------------------------------------------------------------- CSV replay


class CsvReplay:
    """Rows `timestamp,market,price` (a header line is allowed, rows in any order); `read()`
    serves each market's latest row at or before `clock()`, observed at that row's time.
    The whole file is parsed and checked at construction, so a bad file fails at start."""

    def __init__(self, path: Path | str, clock: Clock) -> None:
        self.path, self.clock = Path(path), clock
        if not self.path.exists():
            raise SourceError(f"csv source: {self.path} does not exist")
        rows: dict[str, dict[int, int]] = {}
        with self.path.open(newline="") as handle:
            for line, row in enumerate(csv.reader(handle), start=1):
                if (
                    not row
                    or all(not cell.strip() for cell in row)
                    or row[0].lstrip().startswith("#")
                ):
                    continue
                if line == 1 and row[0].strip().lower() in ("timestamp", "time", "ts"):
                    continue
                where = f"csv source {self.path}:{line}"
                if len(row) != 3:
                    raise SourceError(
                        f"{where}: expected timestamp,market,price, got {len(row)} fields"
                    )
                ts = _to_seconds(row[0].strip(), where)
                market = row[1].strip()
                if not market:
                    raise SourceError(f"{where}: empty market name")
                price = to_wad(row[2].strip(), where)
                if price == 0:
                    raise SourceError(f"{where}: zero price")
                if ts in rows.setdefault(market, {}):
                    raise SourceError(f"{where}: a second {market} row at {ts}")
                rows[market][ts] = price
        if not rows:
            raise SourceError(f"csv source {self.path}: no rows")
        self._times = {m: sorted(r) for m, r in rows.items()}
        self._prices = {m: [r[t] for t in self._times[m]] for m, r in rows.items()}

    def markets(self) -> list[str]:
        return sorted(self._times)

    def rows(self, market: str) -> list[Quote]:
        """Every row of `market`, in time order (empty for a market not in the file)."""
        return [Quote(p, t) for t, p in zip(self._times.get(market, []), self._prices.get(market, []))]

    def read(self) -> dict[str, Quote]:
        now = int(self.clock())
        out: dict[str, Quote] = {}
        for market in self.markets():
            i = bisect.bisect_right(self._times[market], now)
            if i:
                out[market] = Quote(self._prices[market][i - 1], self._times[market][i - 1])
        return out


# ---------------------------------------------------------------- HTTP JSON


class HttpJson:
    """GET `url` answering `{"ETH": {"price": "3000.5", "timestamp": 1700000000}, ...}`.
    Prices are decimal strings (or JSON numbers, parsed as exact decimals); timestamps are
    integers. A timeout, a non-200 answer or a bad payload raises `SourceError`."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise SourceError(f"http source: {url!r} is not an http(s) URL")
        self.url, self.timeout_s = url, timeout_s
        self._markets: list[str] = []

    def markets(self) -> list[str]:
        if not self._markets:
            self.read()
        return list(self._markets)

    def read(self) -> dict[str, Quote]:
        try:
            response = requests.get(
                self.url, timeout=self.timeout_s, headers={"Accept": "application/json"}
            )
        except requests.Timeout:
            raise SourceError(
                f"http source {self.url}: no answer within {self.timeout_s:g} s"
            ) from None
        except requests.RequestException as exc:
            raise SourceError(f"http source {self.url}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise SourceError(f"http source {self.url}: answered HTTP {response.status_code}")
        try:
            payload = json.loads(response.text, parse_float=Decimal, parse_constant=_no_constant)
        except (ValueError, SourceError) as exc:
            raise SourceError(f"http source {self.url}: not JSON: {exc}") from None
        quotes = parse_payload(payload, f"http source {self.url}")
        self._markets = sorted(quotes)
        return quotes


def _no_constant(name: str) -> Any:
    raise SourceError(f"{name} is not a price")


def parse_payload(payload: Any, where: str) -> dict[str, Quote]:
    """`{"ETH": {"price": "3000.5", "timestamp": 1700000000}, ...}` as quotes."""
    if not isinstance(payload, dict) or not payload:
        raise SourceError(
            f"{where}: expected a non-empty JSON object of markets, got {type(payload).__name__}"
        )
    quotes: dict[str, Quote] = {}
    for market, item in payload.items():
        if not isinstance(item, dict) or "price" not in item or "timestamp" not in item:
            raise SourceError(
                f'{where}: {market}: expected {{"price": ..., "timestamp": ...}}, got {item!r}'
            )
        price = to_wad(item["price"], f"{where}: {market} price")
        if price == 0:
            raise SourceError(f"{where}: {market} price is zero")
        quotes[str(market)] = Quote(
            price, _to_seconds(item["timestamp"], f"{where}: {market} timestamp")
        )
    return quotes
