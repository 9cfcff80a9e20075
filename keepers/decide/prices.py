"""Whether and what the price pusher pushes: pure functions over integers.

Prices are WAD USD per whole index token, times are unix seconds, moves are bps. Nothing
here reads the chain or a clock: the daemon passes in what it read (`Quote`s from its
sources, the Oracle's `Stored` state and bounds, `now`), and gets back `Problem`s (each
with a reason the daemon logs) and a `Plan` (the `set_prices` calls to send, in order).

The rules restate the Oracle's (contracts/Oracle.vy) so a push the Oracle would refuse is
never planned:
- a push's timestamp is strictly newer than the stored one, and never after `now`;
- a fresh stored price moves at most `max_jump_bps` per push (`|new - old| * BPS <=
  jump * old`) and at most `max_window_move_bps` from its window's anchor;
- a stored price that went stale bounds nothing: the next push lands whatever it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, NamedTuple

BPS = 10_000
WAD = 10**18
ABSURD_PRICE = 10**12 * WAD  # WAD: no index token is worth a trillion dollars
ORACLE_MAX_PRICE = 2**96 - 1  # WAD, ~7.9e10 USD: the Oracle stores prices in 96 bits
ABSURD_MOVE_BPS = 5_000  # a quote 50 % away from the last pushed price is a broken source
MAX_STEPS = 16  # pushes per market in one plan when a large move is split


class Quote(NamedTuple):
    """One observation of a source: a price and when it was observed."""

    price: int  # WAD USD per whole index token
    observed_at: int  # unix seconds


@dataclass(frozen=True)
class Stored:
    """A market's price as the Oracle holds it (`Oracle.price_data`)."""

    price: int = 0  # WAD; 0 before the first push
    observed_at: int = 0  # s
    window_ref_price: int = 0  # WAD, the anchor of the current window
    window_start: int = 0  # s


@dataclass(frozen=True)
class Problem:
    """A quote or a market the pusher refuses (or warns about), and why."""

    market: str
    # zero | absurd | stale | future | not_newer | missing | disagreement | unconfirmed | jump |
    # window | deferred
    kind: str
    reason: str

    def __str__(self) -> str:
        return f"{self.market}: {self.reason}"


@dataclass(frozen=True)
class Push:
    """One `set_prices` call: every price in it observed at `observed_at`."""

    observed_at: int  # s
    prices: dict[str, int]  # market name -> WAD


@dataclass(frozen=True)
class Plan:
    """What to send this tick, in order (timestamps strictly increasing), what was refused,
    and one line saying why there is (or is no) push."""

    pushes: tuple[Push, ...] = ()
    refused: tuple[Problem, ...] = ()
    reason: str = ""
    # alerts that are not refusals: a move split into steps, a split that stopped short
    notes: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------- formatting


def fmt_wad(value: int) -> str:
    """An exact decimal string of a WAD amount (logs only; no float on the way)."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), WAD)
    text = f"{whole}.{frac:018d}".rstrip("0").rstrip(".")
    return sign + text


def move_bps(old: int, new: int) -> int:
    """|new - old| in bps of `old`, rounded down (0 when there is no old price)."""
    if old <= 0:
        return 0
    return abs(new - old) * BPS // old


# ---------------------------------------------------------------- checks


def validate(
    quote: Quote,
    now: int,
    max_age_s: int,
    last_pushed: Stored | None,
    *,
    market: str = "",
    max_future_s: int = 0,
) -> list[Problem]:
    """Everything wrong with one quote (empty: good to push). Refuses a zero price, an
    absurd one (beyond $1e12, beyond what the Oracle can store, or moved more than 50 %
    from the last pushed price), one older than `max_age_s` or from the future, and one not
    strictly newer than what the Oracle stores."""
    problems: list[Problem] = []
    price, observed_at = quote.price, quote.observed_at
    if price <= 0:
        problems.append(Problem(market, "zero", f"price {fmt_wad(price)} is not positive"))
    elif price > ABSURD_PRICE:
        problems.append(Problem(market, "absurd", f"price {fmt_wad(price)} USD is above 1e12 USD"))
    elif price > ORACLE_MAX_PRICE:
        problems.append(
            Problem(
                market, "absurd", f"price {fmt_wad(price)} USD is above the Oracle's 96-bit maximum"
            )
        )
    elif last_pushed is not None and last_pushed.price > 0:
        moved = abs(price - last_pushed.price) * BPS
        if moved > ABSURD_MOVE_BPS * last_pushed.price:
            problems.append(
                Problem(
                    market,
                    "absurd",
                    f"price {fmt_wad(price)} is {move_bps(last_pushed.price, price)} bps from "
                    f"the last pushed {fmt_wad(last_pushed.price)} "
                    f"(more than {ABSURD_MOVE_BPS} bps: a broken source?)",
                )
            )
    if observed_at > now + max_future_s:
        problems.append(
            Problem(
                market,
                "future",
                f"observed at {observed_at}, {observed_at - now} s after now ({now})",
            )
        )
    elif now - observed_at > max_age_s:
        problems.append(
            Problem(
                market,
                "stale",
                f"observed at {observed_at}, {now - observed_at} s ago (max {max_age_s} s)",
            )
        )
    if last_pushed is not None and observed_at <= last_pushed.observed_at:
        problems.append(
            Problem(
                market,
                "not_newer",
                f"observed at {observed_at}, not newer than the Oracle's {last_pushed.observed_at}",
            )
        )
    return problems


def cross_check(
    primary: Mapping[str, Quote], check: Mapping[str, Quote], max_disagreement_bps: int
) -> list[Problem]:
    """Markets where the check source does not confirm the primary: missing there, not
    positive there, or the two prices differ by more than `max_disagreement_bps` of the
    smaller one (symmetric, so neither source is taken as the truth)."""
    problems: list[Problem] = []
    for market in sorted(primary):
        price = primary[market].price
        other = check.get(market)
        if other is None:
            problems.append(
                Problem(market, "missing", "the check source has no price: cannot confirm")
            )
            continue
        if other.price <= 0 or price <= 0:
            problems.append(
                Problem(
                    market,
                    "disagreement",
                    f"primary {fmt_wad(price)} vs check {fmt_wad(other.price)}: not positive",
                )
            )
            continue
        low = min(price, other.price)
        if abs(price - other.price) * BPS > max_disagreement_bps * low:
            problems.append(
                Problem(
                    market,
                    "disagreement",
                    f"primary {fmt_wad(price)} vs check {fmt_wad(other.price)} differ by "
                    f"{abs(price - other.price) * BPS // low} bps (max {max_disagreement_bps})",
                )
            )
    return problems


# ---------------------------------------------------------------- the plan


def plan_push(
    quotes: Mapping[str, Quote],
    stored: Mapping[str, Stored],
    now: int,
    heartbeat_s: int,
    deviation_bps: int,
    max_jump_bps: int,
    split_large_moves: bool,
    *,
    max_price_age_s: int | None = None,
    window_s: int | None = None,
    max_window_move_bps: int | None = None,
) -> Plan:
    """The pushes for this tick.

    A push is due when some quoted market has no price yet or one at least `heartbeat_s`
    old, or moved at least `deviation_bps` from its stored price; then every market with a
    newer quote goes in one call. The call's timestamp is one of the quotes' (never later
    than any price in it was observed, never after `now`, always newer than each market's
    stored one; markets that do not fit it wait a tick). A move beyond the Oracle's bounds
    (`max_jump_bps` per push, `max_window_move_bps` per window when given) is refused, or
    with `split_large_moves` stepped there in separate calls at strictly increasing
    timestamps ending at the call's. A stored price older than `max_price_age_s` bounds
    nothing (the Oracle lets the first push after an outage land)."""
    hard: list[Problem] = []
    newer: dict[str, Quote] = {}
    for market in sorted(quotes):
        quote = quotes[market]
        old = stored.get(market, Stored())
        if quote.price <= 0:
            hard.append(Problem(market, "zero", f"price {fmt_wad(quote.price)} is not positive"))
        elif quote.observed_at > now:
            hard.append(
                Problem(
                    market,
                    "future",
                    f"observed at {quote.observed_at}, after now ({now}): never pushed",
                )
            )
        elif quote.observed_at <= old.observed_at:
            continue  # judged below, once we know whether a push is due
        else:
            newer[market] = quote

    reason = _why_due(quotes, newer, stored, now, heartbeat_s, deviation_bps)
    if reason is None:
        return Plan(refused=tuple(hard), reason=_why_not(quotes, stored, now, heartbeat_s))

    refused = list(hard)
    for market in sorted(quotes):
        old = stored.get(market, Stored())
        if (
            market not in newer
            and quotes[market].price > 0
            and quotes[market].observed_at <= old.observed_at
        ):
            refused.append(
                Problem(
                    market,
                    "not_newer",
                    f"observed at {quotes[market].observed_at}, "
                    f"not newer than the Oracle's {old.observed_at}: "
                    "never push an older or equal timestamp",
                )
            )
    if not newer:
        return Plan(
            refused=tuple(refused), reason=f"{reason}, but no quote is newer than the Oracle's"
        )

    at, batch = _batch_time(newer, stored)
    for market in sorted(set(newer) - set(batch)):
        refused.append(
            Problem(
                market,
                "deferred",
                f"observed at {newer[market].observed_at}, "
                f"does not fit this call's timestamp {at}: next tick",
            )
        )

    steps: dict[int, dict[str, int]] = {}
    notes: list[str] = []
    for market in batch:
        old = stored.get(market, Stored())
        target = newer[market].price
        bounded = old.price > 0 and (
            max_price_age_s is None or old.observed_at + max_price_age_s >= now
        )
        if not bounded:
            steps.setdefault(at, {})[market] = target
            continue
        windowed = window_s is not None and max_window_move_bps is not None
        if not split_large_moves:
            problem = _single_push_problem(
                market, old, target, at, max_jump_bps, window_s, max_window_move_bps
            )
            if problem is not None:
                refused.append(problem)
            else:
                steps.setdefault(at, {})[market] = target
            continue
        path = _step_path(
            old,
            target,
            at,
            max_jump_bps,
            window_s if windowed else None,
            max_window_move_bps if windowed else None,
        )
        if not path:
            refused.append(
                Problem(
                    market,
                    "window",
                    f"{fmt_wad(old.price)} -> {fmt_wad(target)}: "
                    f"no step fits the Oracle's bounds before {at}",
                )
            )
            continue
        for ts, price in path:
            steps.setdefault(ts, {})[market] = price
        if len(path) > 1:
            notes.append(
                f"{market}: {fmt_wad(old.price)} -> {fmt_wad(target)} "
                f"({move_bps(old.price, target)} bps) split into {len(path)} pushes"
            )
        if path[-1][1] != target:
            notes.append(
                f"{market}: reached {fmt_wad(path[-1][1])} of {fmt_wad(target)} "
                "within the Oracle's bounds; the rest next tick"
            )

    pushes = tuple(Push(ts, dict(sorted(steps[ts].items()))) for ts in sorted(steps))
    return Plan(pushes=pushes, refused=tuple(refused), reason=reason, notes=tuple(notes))


def _why_due(
    quotes: Mapping[str, Quote],
    newer: Mapping[str, Quote],
    stored: Mapping[str, Stored],
    now: int,
    heartbeat_s: int,
    deviation_bps: int,
) -> str | None:
    """Why a push is due ("first price", "heartbeat ...", "deviation ..."), or None."""
    for market in sorted(quotes):
        old = stored.get(market, Stored())
        if old.price == 0:
            return f"first price for {market}"
    ages = {m: now - stored[m].observed_at for m in quotes if m in stored}
    if ages:
        oldest = max(ages, key=lambda m: (ages[m], m))
        if ages[oldest] >= heartbeat_s:
            return f"heartbeat: {oldest}'s price is {ages[oldest]} s old (>= {heartbeat_s} s)"
    for market in sorted(newer):
        old = stored[market].price
        if abs(newer[market].price - old) * BPS >= deviation_bps * old:
            moved = move_bps(old, newer[market].price)
            return f"deviation: {market} moved {moved} bps (>= {deviation_bps})"
    return None


def _why_not(
    quotes: Mapping[str, Quote], stored: Mapping[str, Stored], now: int, heartbeat_s: int
) -> str:
    ages = [now - stored[m].observed_at for m in quotes if m in stored]
    moves = [move_bps(stored[m].price, quotes[m].price) for m in quotes if m in stored]
    if not quotes:
        return "no quotes"
    return (
        f"fresh: oldest price {max(ages, default=0)} s < heartbeat {heartbeat_s} s, "
        f"largest move {max(moves, default=0)} bps"
    )


def _batch_time(newer: Mapping[str, Quote], stored: Mapping[str, Stored]) -> tuple[int, list[str]]:
    """The one timestamp of the call and the markets it can carry: a market fits `t` when
    its stored time < t <= its quote's time. The candidate (a quote's time) that fits the
    most markets wins, the latest on a tie."""
    best: tuple[int, int, list[str]] | None = None
    for t in sorted({q.observed_at for q in newer.values()}):
        fits = sorted(
            m for m, q in newer.items() if stored.get(m, Stored()).observed_at < t <= q.observed_at
        )
        if best is None or (len(fits), t) >= (best[0], best[1]):
            best = (len(fits), t, fits)
    assert best is not None
    return best[1], best[2]


def _jump_ok(old: int, new: int, max_jump_bps: int) -> bool:
    return abs(new - old) * BPS <= max_jump_bps * old


def _single_push_problem(
    market: str,
    old: Stored,
    target: int,
    at: int,
    max_jump_bps: int,
    window_s: int | None,
    max_window_move_bps: int | None,
) -> Problem | None:
    """Why one push of `target` at `at` is beyond the Oracle's bounds (None: within)."""
    if not _jump_ok(old.price, target, max_jump_bps):
        return Problem(
            market,
            "jump",
            f"{fmt_wad(old.price)} -> {fmt_wad(target)} moves {move_bps(old.price, target)} bps, "
            f"beyond the Oracle's {max_jump_bps} bps per push: refused (split_large_moves is off)",
        )
    if window_s is not None and max_window_move_bps is not None:
        ref = old.window_ref_price
        if at >= old.window_start + window_s or ref == 0:
            ref = old.price
        if abs(target - ref) * BPS > max_window_move_bps * ref:
            return Problem(
                market,
                "window",
                f"{fmt_wad(target)} is {move_bps(ref, target)} bps "
                f"from the window's anchor {fmt_wad(ref)}, "
                f"beyond the Oracle's {max_window_move_bps} bps per window: refused",
            )
    return None


def _step_path(
    old: Stored,
    target: int,
    at: int,
    max_jump_bps: int,
    window_s: int | None,
    max_window_move_bps: int | None,
) -> list[tuple[int, int]]:
    """(timestamp, price) steps from the stored price towards `target`, each within the
    Oracle's jump bound from the previous one (and its window bound when given), at
    consecutive seconds ending at `at` and all after the stored timestamp. At most
    `MAX_STEPS`; when they do not reach the target, the last is as close as allowed."""
    if target == old.price:
        return [(at, target)]  # an unmoved price (a heartbeat): one push, within every bound
    count = _jump_steps(old.price, target, max_jump_bps)
    count = min(count, at - old.observed_at, MAX_STEPS)
    path: list[tuple[int, int]] = []
    price = old.price
    ref, start = old.window_ref_price or old.price, old.window_start
    for ts in range(at - count + 1, at + 1):
        if price == target:
            break
        bound = price * max_jump_bps // BPS
        step = min(max(target, price - bound), price + bound)
        if window_s is not None and max_window_move_bps is not None:
            if ts >= start + window_s:
                ref, start = price, ts  # the Oracle anchors a new window at the last price
            window = ref * max_window_move_bps // BPS
            step = min(max(step, ref - window), ref + window)
        forward = (step - price) * (target - price) > 0
        if not forward or not _jump_ok(price, step, max_jump_bps):
            break  # no room left in this window (or bounds the admin tightened since)
        path.append((ts, step))
        price = step
    return path


def _jump_steps(old: int, target: int, max_jump_bps: int) -> int:
    """How many pushes within the jump bound take `old` to `target` (each step the largest
    allowed move, rounded down as the Oracle checks it); MAX_STEPS + 1 when more."""
    price, count = old, 0
    while price != target and count <= MAX_STEPS:
        bound = price * max_jump_bps // BPS
        if bound == 0:
            return MAX_STEPS + 1
        price = min(max(target, price - bound), price + bound)
        count += 1
    return count
