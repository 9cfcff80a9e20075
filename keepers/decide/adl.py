"""The ADL keeper's decisions, restated from `contracts/RiskEngine.vy` over plain integers:
the trigger, the ranking (`_score`, ties by position key), the size the clamp allows
(`_clamp`) and the walk down the ranking that a keeper plans for one side.

Units as on chain (docs/units.md): `int` WAD USD for PnL, pool and sizes, token units for
collateral, basis points for factors. No floats.

The walk models each close with the clamp's own formulas (docs/risk.md "ADL"): closing d of
a position of size Z and profit R realises r = R d / Z, the side's profit becomes S - r and
the pool P - q r + fee(d) - insurance cut + pending borrowing - pending funding (q = cap / S
while the traders' profit cap applies, else 1). Every rounding in this model leans against
the target (r up, the pool's gains up, its payout down), so a step the clamp allows lands,
in the model, no lower than the target: with f >= 1 the clamp's margin (4 token units and
$0.000001, times f) exceeds what the model's rounding can cost (under 10_000 + 2 f wei of
S x 10_000 - f P), and with f = 0, r <= S. The walk still checks every step (as the
contract re-checks every close) and stops rather than plan one below the target. The
chain's numbers differ from the model by token rounding and the fees accrued since the
read (a few token units), so the keeper re-reads `adl_state` and `adl_size_limit` before
every close: the model ranks and forecasts, the contract sizes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

BPS = 10_000
WAD = 10**18
MICRO_USD = 10**12  # WAD: RiskEngine.MICRO_USD, part of the clamp's rounding margin
ROUNDING_UNITS = 4  # RiskEngine.ROUNDING_UNITS: token units of the clamp's margin


@dataclass(frozen=True)
class SideState:
    """One market side as the RiskEngine sees it (`adl_state` plus the market's settings)."""

    pnl: int  # S, WAD: the side's net unrealised PnL at the close price
    pool: int  # P, WAD: pool amount x token scale, the factor's denominator
    trigger_bps: int  # max_pnl_factor_for_adl_bps: ADL only while S * 10_000 > trigger * P
    target_bps: int  # min_pnl_factor_after_adl_bps: no close takes the factor below it
    traders_cap_bps: int  # max_pnl_factor_for_traders_bps: realised profit scaled above it
    position_fee_bps: int  # the market's close fee, of size
    token_scale: int  # WAD per token unit (10**12 for a 6-decimal token)
    insurance_cut_bps: int = 0  # of the close fee, leaves the pool; 0 is the cautious default

    def __post_init__(self) -> None:
        if self.token_scale <= 0:
            raise ValueError("token_scale must be > 0")
        if not 0 <= self.target_bps < BPS or not 0 <= self.trigger_bps <= BPS:
            raise ValueError("target_bps must be in [0, 10_000) and trigger_bps in [0, 10_000]")
        if not 0 <= self.traders_cap_bps <= BPS or not 0 <= self.insurance_cut_bps <= BPS:
            raise ValueError("traders_cap_bps and insurance_cut_bps must be in [0, 10_000]")
        if self.position_fee_bps < 0:
            raise ValueError("position_fee_bps must be >= 0")


@dataclass(frozen=True)
class Candidate:
    """One open position of the side, as `Perp.get_position` and `Perp.position_values` at
    the close price return it."""

    key: int  # Perp.position_key as an unsigned integer: the tie-break, ascending
    account: str
    size: int  # WAD USD
    collateral: int  # token units
    pnl: int  # WAD USD at the close price
    borrowing_fee: int = 0  # WAD USD pending, rounded up
    funding: int = 0  # WAD USD pending: > 0 received, < 0 paid
    score: int | None = None  # the contract's adl_score when read on chain; None: restated


@dataclass(frozen=True)
class Step:
    """One planned close: the side before and after it, in the model."""

    candidate: Candidate
    score: int
    size: int  # WAD USD: min(position size, clamp)
    pnl_before: int
    pool_before: int
    pnl_after: int
    pool_after: int


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    # why the walk ended: not triggered, below trigger, clamp 0, exhausted, max steps,
    # pool exhausted, overshoot
    stop: str
    pnl_after: int
    pool_after: int


# ---------------------------------------------------------------- the contract's formulas


def triggered(pnl: int, pool: int, trigger_bps: int) -> bool:
    """RiskEngine._state: S * 10_000 > trigger * P (strict; never with S <= 0)."""
    return pnl > 0 and pnl * BPS > trigger_bps * pool


def factor_bps(pnl: int, pool: int) -> int:
    """max(S, 0) * 10_000 // P, rounded down; the contract's max uint256 for an empty pool."""
    if pnl <= 0:
        return 0
    if pool == 0:
        return 2**256 - 1
    return pnl * BPS // pool


def at_or_above_target(pnl: int, pool: int, target_bps: int) -> bool:
    """The RiskEngine's re-check after a close: max(S', 0) * 10_000 >= target * P'."""
    return max(pnl, 0) * BPS >= target_bps * pool


def score(size: int, collateral: int, pnl: int, token_scale: int) -> int:
    """RiskEngine._score: (|PnL| * WAD // coll) * size // coll, coll = max(collateral x
    scale, 1), signed like the PnL (Python's // on non-negatives equals Vyper's rounding
    toward zero)."""
    coll = max(collateral * token_scale, 1)
    magnitude = (abs(pnl) * WAD // coll) * size // coll
    return -magnitude if pnl < 0 else magnitude


def score_of(c: Candidate, token_scale: int) -> int:
    """The candidate's ranking score: the chain's when it was read, else the restatement."""
    return score(c.size, c.collateral, c.pnl, token_scale) if c.score is None else c.score


def rank(candidates: Iterable[Candidate], token_scale: int) -> list[Candidate]:
    """The profitable candidates (the only ones ADL may close), highest score first, ties
    by position key ascending (docs/risk.md "Fairness")."""
    profitable = [c for c in candidates if c.pnl > 0 and c.size > 0]
    return sorted(profitable, key=lambda c: (-score_of(c, token_scale), c.key))


def clamp(state: SideState, c: Candidate) -> int:
    """RiskEngine._clamp: the largest size whose close keeps the factor at or above the
    target, d = (S 10_000 - f P'') Z // (R 10_000 - paid + ceil(f fee_bps Z / 10_000)),
    P'' = P + borrowing + 4 units + $0.000001 - funding, paid = f R (x cap // S above the
    traders' cap); 0 when the numerator is <= 0. Not clipped to the position's size."""
    if c.pnl <= 0 or c.size <= 0:
        return 0
    f = state.target_bps
    pool = state.pool + c.borrowing_fee + ROUNDING_UNITS * state.token_scale + MICRO_USD - c.funding
    numerator = state.pnl * BPS - f * pool
    if numerator <= 0:
        return 0
    cap = state.pool * state.traders_cap_bps // BPS
    paid = f * c.pnl
    if state.pnl > cap:
        paid = paid * cap // state.pnl
    denominator = c.pnl * BPS - paid + _ceil_div(f * state.position_fee_bps * c.size, BPS)
    return numerator * c.size // denominator


def size_limit(state: SideState, c: Candidate) -> int:
    """RiskEngine.adl_size_limit: min(size, clamp) while triggered and in profit, else 0."""
    if not triggered(state.pnl, state.pool, state.trigger_bps) or c.pnl <= 0:
        return 0
    return min(c.size, clamp(state, c))


def after_close(state: SideState, c: Candidate, size: int) -> tuple[int, int]:
    """(S', P') after closing `size` of `c`, in the clamp's model (module docstring), every
    rounding against the target: r = ceil(R d / Z) (R on a full close), the profit paid
    r, or floor(r cap / S) above the cap, the fee ceil(d fee_bps / 10_000) less the
    insurance cut (rounded down), the pending borrowing and funding settled into the pool."""
    if not 0 < size <= c.size:
        raise ValueError("size must be in (0, position size]")
    realised = c.pnl if size == c.size else _ceil_div(c.pnl * size, c.size)
    cap = state.pool * state.traders_cap_bps // BPS
    paid = realised
    if realised > 0 and state.pnl > cap:
        paid = realised * cap // state.pnl
    fee = _ceil_div(size * state.position_fee_bps, BPS)
    cut = fee * state.insurance_cut_bps // BPS
    pool = state.pool - paid + fee - cut + c.borrowing_fee - c.funding
    return state.pnl - realised, pool


# ---------------------------------------------------------------- the walk


def plan(state: SideState, candidates: Sequence[Candidate], max_steps: int | None = None) -> Plan:
    """Walk down the ranking: while the side is triggered, give the next position
    min(its size, the clamp at the side's modelled state), then update S and P as that
    close would. Stops when the trigger no longer holds, the clamp is 0 (the target is
    reached for that position: the walk never skips down the ranking), the ranking is
    exhausted or `max_steps` closes are planned. A step the model says would land below the
    target (never expected: the contract would revert "risk: adl overshoot") is not planned."""
    s, p = state.pnl, state.pool
    if not triggered(s, p, state.trigger_bps):
        return Plan((), "not triggered", s, p)
    steps: list[Step] = []
    stop = "exhausted"
    for c in rank(candidates, state.token_scale):
        if not triggered(s, p, state.trigger_bps):
            stop = "below trigger"
            break
        if max_steps is not None and len(steps) >= max_steps:
            stop = "max steps"
            break
        now = replace(state, pnl=s, pool=p)
        size = min(c.size, clamp(now, c))
        if size == 0:
            stop = "clamp 0"
            break
        s_after, p_after = after_close(now, c, size)
        if (
            p_after < 0
        ):  # the pool could not pay it (the Vault would revert): inputs off the chain's range
            stop = "pool exhausted"
            break
        if not at_or_above_target(s_after, p_after, state.target_bps):
            stop = "overshoot"
            break
        steps.append(Step(c, score_of(c, state.token_scale), size, s, p, s_after, p_after))
        s, p = s_after, p_after
    else:
        if not triggered(s, p, state.trigger_bps):
            stop = "below trigger"
    return Plan(tuple(steps), stop, s, p)


def _ceil_div(x: int, d: int) -> int:
    return -(-x // d)
