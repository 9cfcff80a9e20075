"""Which positions are liquidatable at a price: Perp's health function restated over plain
integers, and an index per market side sorted by liquidation price, so a price update finds
its candidates by bisection instead of by checking every position.

The health function (docs/risk.md "The health function", `Perp._values`), all WAD USD at
the close price (longs at the min price, shorts at the max), costs rounded up, gains down:

    pnl         long  floor(size_tokens * p / 1e18) - size_usd        (math.vy pnl_usd)
                short size_usd - ceil(size_tokens * p / 1e18)
    borrowing   ceil(size_usd * (borrow_index - snapshot) / 1e18)
    funding     size_usd * (side index - snapshot) / 1e18, received down, paid up
                (= floor of the signed product in both cases)
    close fee   ceil(size_usd * position_fee_bps / 10_000)
    remaining   collateral * token_scale + pnl + funding - borrowing - close fee
    maintenance max(ceil(size_usd * rate(size tier) / 10_000), min_maintenance_usd)
    liquidatable  <=>  remaining < maintenance

remaining(p) = maintenance is linear in p (PerpReader._liquidation_price), and with the
pending fees held fixed the boundary is exact over integer prices:

    fixed = collateral * token_scale + funding - borrowing - close fee - maintenance
    long:  N = size_usd - fixed, p_liq = ceil(N * 1e18 / size_tokens)  (0 when N <= 0)
           liquidatable  <=>  p < p_liq     (floor(T p / 1e18) < N  <=>  T p < N 1e18)
    short: N = size_usd + fixed, p_liq = floor(N * 1e18 / size_tokens) (0 when N <= 0)
           liquidatable  <=>  p > p_liq     (ceil(T p / 1e18) > N  <=>  T p > N 1e18)

The pending fees do move with time, so a side's index stores every liquidation price at
one reference set of indices (`ref`) and widens its search by a drift bound derived from
how far the indices moved since (see `SideIndex.drift`): the candidates it returns are a
superset of the liquidatable positions, which the exact health function then confirms.
With the indices unchanged the drift is 0 and the candidate set is exactly the
liquidatable set. The contract's own check (`is_liquidatable`, or the batch skipping
healthy positions) has the final word.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Iterable, Sequence

WAD = 10**18
BPS = 10_000

#: Rebuild a side's index (recompute every liquidation price at the current indices) once
#: its drift bound exceeds this share of the price: only a matter of speed, never of
#: correctness (the candidate set stays a superset however large the drift).
REBUILD_DRIFT_BPS = 10

PositionKey = tuple[str, int, bool]  # (account, market, is_long): Perp's position key inputs


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class MarketParams:
    """The settings the health function reads (Configurator.configs and risk_configs, and
    Perp.token_scale): USD amounts WAD, rates in bps."""

    position_fee_bps: int
    maintenance_margin_bps: int  # below the first tier
    min_maintenance_usd: int  # WAD floor
    tier_threshold_usd: tuple[int, ...] = ()  # WAD, increasing; 0 ends the table
    tier_maintenance_bps: tuple[int, ...] = ()
    token_scale: int = 10**12  # WAD per collateral token unit

    @classmethod
    def from_configs(cls, config: Sequence, risk: Sequence, token_scale: int) -> "MarketParams":
        """From the Configurator's `configs(m)` (MarketConfig) and `risk_configs(m)`
        (RiskConfig) tuples, in their ABI field order."""
        return cls(
            position_fee_bps=int(config[1]),
            maintenance_margin_bps=int(config[8]),
            min_maintenance_usd=int(config[9]),
            tier_threshold_usd=tuple(int(x) for x in risk[0]),
            tier_maintenance_bps=tuple(int(x) for x in risk[1]),
            token_scale=int(token_scale),
        )


@dataclass(frozen=True)
class Indices:
    """A market's borrowing and funding indices (Perp.current_indices)."""

    borrow: int
    funding_long: int
    funding_short: int

    def funding(self, is_long: bool) -> int:
        return self.funding_long if is_long else self.funding_short


@dataclass(frozen=True)
class Position:
    """A position's stored state (Perp.get_position, or the last PositionUpdate event)."""

    account: str
    market: int
    is_long: bool
    size_usd: int  # WAD
    size_tokens: int  # WAD
    collateral: int  # token units
    borrow_index: int  # snapshot
    funding_index: int  # snapshot, signed

    @property
    def key(self) -> PositionKey:
        return (self.account, self.market, self.is_long)


@dataclass(frozen=True)
class Values:
    """Perp's PositionValues."""

    pnl: int
    borrowing_fee: int
    funding: int  # > 0 received
    close_fee: int
    remaining: int
    maintenance: int


# ---------------------------------------------------------------- arithmetic (math.vy)


def mul_div(x: int, y: int, d: int, round_up: bool) -> int:
    """x * y / d over non-negative ints, rounded down or up (math.vy mul_div)."""
    q, r = divmod(x * y, d)
    return q + 1 if round_up and r else q


def pnl_usd(size_usd: int, size_tokens: int, price: int, is_long: bool) -> int:
    """math.vy pnl_usd: the tokens' value rounds down for longs and up for shorts."""
    if is_long:
        return mul_div(size_tokens, price, WAD, False) - size_usd
    return size_usd - mul_div(size_tokens, price, WAD, True)


def maintenance(params: MarketParams, size_usd: int) -> int:
    """Perp._maintenance: the rate of the size's tier (the base rate below the first
    threshold, a zero threshold ends the table) times the size, rounded up, at least the
    floor."""
    bps = params.maintenance_margin_bps
    for threshold, rate in zip(params.tier_threshold_usd, params.tier_maintenance_bps):
        if threshold == 0 or size_usd < threshold:
            break
        bps = rate
    return max(mul_div(size_usd, bps, BPS, True), params.min_maintenance_usd)


def borrowing_fee(size_usd: int, index: int, snapshot: int) -> int:
    """ceil(size * (index - snapshot) / 1e18). Signed: an index below the snapshot (only
    ever a reference index older than the position, inside `SideIndex`) gives a credit,
    so the liquidation price stays one consistent function of the indices."""
    return -((-size_usd * (index - snapshot)) // WAD)


def funding_wad(size_usd: int, index: int, snapshot: int) -> int:
    """Perp._funding_wad: received rounds down, paid rounds up (away from zero), which is
    the floor of the signed product either way."""
    return (size_usd * (index - snapshot)) // WAD


def close_fee(params: MarketParams, size_usd: int) -> int:
    return mul_div(size_usd, params.position_fee_bps, BPS, True)


def values(pos: Position, params: MarketParams, idx: Indices, price: int) -> Values:
    """Perp._values: PnL, pending fees, remaining value and maintenance at `price`."""
    pnl = pnl_usd(pos.size_usd, pos.size_tokens, price, pos.is_long)
    borrowing = borrowing_fee(pos.size_usd, idx.borrow, pos.borrow_index)
    funding = funding_wad(pos.size_usd, idx.funding(pos.is_long), pos.funding_index)
    fee = close_fee(params, pos.size_usd)
    remaining = pos.collateral * params.token_scale + pnl + funding - borrowing - fee
    return Values(pnl, borrowing, funding, fee, remaining, maintenance(params, pos.size_usd))


def is_liquidatable(pos: Position, params: MarketParams, idx: Indices, price: int) -> bool:
    """Perp.is_liquidatable at `price` (the close price of the position's side)."""
    if pos.size_usd == 0:
        return False
    v = values(pos, params, idx, price)
    return v.remaining < v.maintenance


def liquidation_price(pos: Position, params: MarketParams, idx: Indices) -> int:
    """The boundary price (PerpReader._liquidation_price): a long is liquidatable exactly at
    prices below it, a short exactly at prices above it. 0 when no price makes a long
    liquidatable, or when every price makes a short liquidatable."""
    fixed = (
        pos.collateral * params.token_scale
        + funding_wad(pos.size_usd, idx.funding(pos.is_long), pos.funding_index)
        - borrowing_fee(pos.size_usd, idx.borrow, pos.borrow_index)
        - close_fee(params, pos.size_usd)
        - maintenance(params, pos.size_usd)
    )
    if pos.is_long:
        numerator = pos.size_usd - fixed
        return mul_div(numerator, WAD, pos.size_tokens, True) if numerator > 0 else 0
    numerator = pos.size_usd + fixed
    return mul_div(numerator, WAD, pos.size_tokens, False) if numerator > 0 else 0


def beyond(price: int, p_liq: int, is_long: bool) -> bool:
    """True when `price` is on the liquidatable side of the boundary `p_liq`."""
    return price < p_liq if is_long else price > p_liq


# ---------------------------------------------------------------- the index


class SideIndex:
    """The open positions of one market side sorted by liquidation price, computed at the
    reference indices `ref`.

    Drift bound. Between `ref` and indices `now`, with dB = now.borrow - ref.borrow and
    dF = now.funding - ref.funding for the side and dg = dB - dF: the borrowing term grows
    by at most ceil(S dB / 1e18) and the funding term falls by at most ceil(-S dF / 1e18)
    (ceil(x) - ceil(y) <= ceil(x - y), floor(x) - floor(y) <= ceil(x - y)), so a long's N
    rises (a short's falls) by at most S dg / 1e18 + 2, and its liquidation price moves
    towards the price by at most

        S dg+ / T + 2 * 1e18 / T + 1  <=  max_entry * dg+ / 1e18 + ceil(2e18 / min_tokens) + 1

    with max_entry = max ceil(S * 1e18 / T) and min_tokens = min T over the side (kept as
    high-water marks since the last rebuild). When the indices have not moved the bound is
    0 and the candidates are exactly the liquidatable positions.
    """

    def __init__(self, market: int, is_long: bool, params: MarketParams, ref: Indices) -> None:
        self.market, self.is_long = market, is_long
        self.params, self.ref = params, ref
        self._sorted: list[tuple[int, PositionKey]] = []  # (liquidation price at ref, key)
        self._by_key: dict[PositionKey, tuple[int, Position]] = {}
        self._max_entry = 0
        self._min_tokens = 0  # 0: no position seen since the last rebuild

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def positions(self) -> list[Position]:
        return [pos for _, pos in self._by_key.values()]

    def liquidation_price(self, key: PositionKey) -> int:
        """The stored liquidation price (at `ref`)."""
        return self._by_key[key][0]

    def upsert(self, pos: Position) -> None:
        """Add a position or replace its previous state; a zero size removes it."""
        self.remove(pos.key)
        if pos.size_usd == 0:
            return
        if pos.market != self.market or pos.is_long != self.is_long:
            raise ValueError(f"position {pos.key} is not on side ({self.market}, {self.is_long})")
        p_liq = liquidation_price(pos, self.params, self.ref)
        bisect.insort(self._sorted, (p_liq, pos.key))
        self._by_key[pos.key] = (p_liq, pos)
        self._max_entry = max(self._max_entry, mul_div(pos.size_usd, WAD, pos.size_tokens, True))
        self._min_tokens = pos.size_tokens if self._min_tokens == 0 else min(self._min_tokens, pos.size_tokens)

    def remove(self, key: PositionKey) -> None:
        old = self._by_key.pop(key, None)
        if old is not None:
            i = bisect.bisect_left(self._sorted, (old[0], key))
            del self._sorted[i]

    def rebuild(self, ref: Indices, params: MarketParams | None = None) -> None:
        """Recompute every liquidation price at new reference indices (and settings)."""
        positions = self.positions()
        self.ref = ref
        if params is not None:
            self.params = params
        self._sorted, self._by_key = [], {}
        self._max_entry, self._min_tokens = 0, 0
        for pos in positions:
            self.upsert(pos)

    def drift(self, now: Indices) -> int:
        """How far (WAD price) any stored liquidation price may have moved towards the
        liquidatable side between `ref` and `now` (see the class docstring)."""
        d_borrow = now.borrow - self.ref.borrow
        d_funding = now.funding(self.is_long) - self.ref.funding(self.is_long)
        if (d_borrow, d_funding) == (0, 0) or not self._by_key:
            return 0
        dg = max(d_borrow - d_funding, 0)
        return mul_div(self._max_entry, dg, WAD, True) + mul_div(2, WAD, self._min_tokens, True) + 1

    def candidates(self, price: int, now: Indices) -> list[PositionKey]:
        """Every position that may be liquidatable at `price` with indices `now`, found by
        bisection: a superset of the liquidatable ones, exactly them when `now == ref`."""
        d = self.drift(now)
        if self.is_long:  # liquidatable: price < p_liq_now <= p_liq_ref + d
            start = bisect.bisect_right(self._sorted, (price - d, _MAX_KEY))
            return [key for _, key in self._sorted[start:]]
        # short, liquidatable: price > p_liq_now >= p_liq_ref - d
        end = bisect.bisect_left(self._sorted, (price + d, _MIN_KEY))
        return [key for _, key in self._sorted[:end]]

    def liquidatable(self, price: int, now: Indices) -> list[Position]:
        """The candidates the exact health function confirms at `price` and `now`."""
        out = []
        for key in self.candidates(price, now):
            pos = self._by_key[key][1]
            if is_liquidatable(pos, self.params, now, price):
                out.append(pos)
        return out

    def needs_rebuild(self, price: int, now: Indices) -> bool:
        """True when the drift bound exceeds REBUILD_DRIFT_BPS of the price."""
        return self.drift(now) * BPS > price * REBUILD_DRIFT_BPS


# keys sort after / before every real key at the same price (tuples compare elementwise)
_MAX_KEY: PositionKey = ("\U0010ffff", 2**256, True)
_MIN_KEY: PositionKey = ("", -1, False)


class LiquidationIndex:
    """One `SideIndex` per market side, over the position set."""

    def __init__(self) -> None:
        self.sides: dict[tuple[int, bool], SideIndex] = {}
        self.params: dict[int, MarketParams] = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self.sides.values())

    def set_market(self, market: int, params: MarketParams, ref: Indices) -> None:
        """Set (or change) a market's settings; its sides are rebuilt at `ref`."""
        self.params[market] = params
        for is_long in (True, False):
            side = self.sides.get((market, is_long))
            if side is None:
                self.sides[(market, is_long)] = SideIndex(market, is_long, params, ref)
            else:
                side.rebuild(ref, params)

    def upsert(self, pos: Position) -> None:
        """Requires the market to be set (`set_market`) first."""
        self.sides[(pos.market, pos.is_long)].upsert(pos)

    def remove(self, key: PositionKey) -> None:
        side = self.sides.get((key[1], key[2]))
        if side is not None:
            side.remove(key)

    def side(self, market: int, is_long: bool) -> SideIndex:
        return self.sides[(market, is_long)]


def brute_force(positions: Iterable[Position], params: MarketParams, idx: Indices, price: int) -> set[PositionKey]:
    """Every liquidatable position of `positions` by the health function alone (the
    reference the index is tested against)."""
    return {p.key for p in positions if is_liquidatable(p, params, idx, price)}
