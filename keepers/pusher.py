"""The price pusher: reads its source (and a check source when set), decides with
`keepers.decide.prices`, and pushes through `Oracle.set_prices`.

A thin daemon: every tick it reads the Oracle's stored prices, the source's quotes and the
chain's time; the pure functions say what to refuse and what to push; every refusal is
logged with its reason and counted (`push_refused`), every price landed is counted
(`prices_pushed`). Startup reads the Oracle's bounds (`max_jump_bps`, `max_price_age`, the
window) and the markets from the deployment file.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping

from keepers.chain import Chain
from keepers.decide.prices import (
    Plan,
    Problem,
    Quote,
    Stored,
    cross_check,
    fmt_wad,
    plan_push,
    validate,
)
from keepers.log import Log
from keepers.metrics import Metrics
from keepers.settings import KeeperSettings, SettingsError
from keepers.sources import Clock, CsvReplay, HttpJson, PriceSource, RandomWalk


class OracleBounds:
    """The part of `Oracle.config()` the pusher plans with."""

    def __init__(self, config: Any) -> None:
        (
            self.max_price_age,
            self.max_future_skew,
            self.window,
            _spread_duration,
            self.max_jump_bps,
            self.max_window_move_bps,
            *_rest,
        ) = (int(v) for v in config)

    def fields(self) -> dict[str, int]:
        return {
            "max_price_age": self.max_price_age,
            "max_future_skew": self.max_future_skew,
            "window": self.window,
            "max_jump_bps": self.max_jump_bps,
            "max_window_move_bps": self.max_window_move_bps,
        }


def chain_clock(chain: Chain) -> Clock:
    """The chain's time as the next push will see it: the pending block's timestamp where
    the node has one (Anvil honours a pinned `evm_setNextBlockTimestamp` there), never
    earlier than the latest block's. Sources built for the pusher observe on this clock, so
    a devnet's quotes are stamped in chain time, however far the chain was warped.
    `Chain.send` simulates against the pending block too, so the Oracle's future-skew rule
    sees the same time."""

    def now() -> int:
        latest = chain.timestamp("latest")
        try:
            return max(latest, chain.timestamp("pending"))
        except Exception:  # noqa: BLE001 (a node without a pending block: the latest will do)
            return latest

    return now


def build_source(
    settings: KeeperSettings,
    markets: Mapping[str, int],
    clock: Clock,
    which: str = "source",
) -> PriceSource | None:
    """The source named by `settings.source` (`which="source"`) or `settings.check_source`
    (`which="check"`; None when "none"). `markets` maps names to start prices (WAD), used by
    the random walk, seeded from `settings.seed` (the check walk uses the same seed, so it
    follows the primary exactly: a devnet's check source that only catches plumbing)."""
    kind = settings.source if which == "source" else settings.check_source
    if kind == "none":
        return None
    if kind == "random":
        return RandomWalk(
            markets,
            seed=settings.seed,
            clock=clock,
            step_bps=settings.walk_step_bps,
            jump_bps=settings.walk_jump_bps,
            jump_every=settings.walk_jump_every,
        )
    if kind == "csv":
        if settings.csv_path is None:
            raise SettingsError(f"{which}: csv needs csv_path (PERPOOL_CSV_PATH)")
        if which == "check" and settings.source == "csv":
            raise SettingsError(
                "check_source: csv would read the primary's own csv_path; use another kind"
            )
        return CsvReplay(settings.csv_path, clock)
    if kind == "http":
        url = settings.http_url if which == "source" else settings.check_http_url
        if url is None:
            name = "http_url" if which == "source" else "check_http_url"
            raise SettingsError(f"{which}: http needs {name} (PERPOOL_{name.upper()})")
        return HttpJson(url, timeout_s=settings.http_timeout_s)
    raise SettingsError(f"{which}: unknown source kind {kind!r}")


class PricePusher:
    """The keeper that keeps every market's Oracle price fresh (see the module docstring).
    `source` gives the prices; `check_source`, when set, must confirm each within
    `max_disagreement_bps` or that market is not pushed; `clock` is the chain's time
    unless a test gives another."""

    name = "prices"

    def __init__(
        self,
        chain: Chain,
        settings: KeeperSettings,
        log: Log,
        metrics: Metrics,
        source: PriceSource,
        check_source: PriceSource | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.chain, self.settings, self.log, self.metrics = chain, settings, log, metrics
        self.source, self.check_source = source, check_source
        self.clock: Callable[[], int] = clock or chain_clock(chain)
        self.markets: dict[str, int] = dict(chain.deployment.markets)  # name -> Oracle market id
        self.bounds: OracleBounds | None = None
        self.stored: dict[str, Stored] = {}

    @classmethod
    def from_settings(
        cls,
        chain: Chain,
        settings: KeeperSettings,
        log: Log,
        metrics: Metrics,
        clock: Clock | None = None,
    ) -> "PricePusher":
        """A pusher with the sources the settings name; a random walk starts at the
        Oracle's current prices."""
        clock = clock or chain_clock(chain)
        start = {}
        for name, market in chain.deployment.markets.items():
            price = read_stored(chain, market).price
            if price == 0:
                raise SettingsError(
                    f"source random: the Oracle has no price for {name} to start the walk from"
                )
            start[name] = price
        source = build_source(settings, start, clock, "source")
        assert source is not None
        return cls(
            chain,
            settings,
            log,
            metrics,
            source,
            build_source(settings, start, clock, "check"),
            clock,
        )

    # ------------------------------------------------------------ lifecycle

    def startup(self) -> None:
        if not self.markets:
            raise SettingsError(f"{self.settings.deployment} lists no markets to push")
        self.bounds = OracleBounds(self.chain.call(self.chain.oracle.functions.config()))
        self.stored = self._read_stored()
        unpriced = sorted(set(self.markets) - set(self.source.markets()))
        if unpriced:
            self.log.warn(
                "source_lacks_markets", markets=unpriced, source=type(self.source).__name__
            )
        self.log(
            "pusher_started",
            markets=self.markets,
            source=type(self.source).__name__,
            check_source=type(self.check_source).__name__ if self.check_source else None,
            heartbeat_s=self.settings.heartbeat_s,
            deviation_bps=self.settings.deviation_bps,
            split_large_moves=self.settings.split_large_moves,
            **self.bounds.fields(),
            stored={m: [fmt_wad(s.price), s.observed_at] for m, s in self.stored.items()},
        )

    def shutdown(self) -> None:
        self.log(
            "pusher_stopped",
            stored={m: [fmt_wad(s.price), s.observed_at] for m, s in self.stored.items()},
        )

    def tick(self) -> None:
        """Read, decide, push. A source that cannot answer fails the tick (the Runner
        counts it against the failure budget); nothing is pushed from half a reading."""
        plan, now = self.plan_now()
        self._send(plan)
        self._gauges(now)

    def plan_now(
        self, only: Iterable[str] | None = None, force_reason: str | None = None
    ) -> tuple[Plan, int]:
        """The pusher's whole decision for this moment: read the sources, the Oracle and
        the chain's time, screen the quotes and plan; every refusal is logged and counted.
        Returns the plan and `now`. `only` limits it to those markets; with `force_reason`
        a push is due whatever the heartbeat and deviation say, and the plan gives that
        reason (the order keeper's: orders wait for a newer price). Nothing is sent."""
        assert self.bounds is not None, "startup() first"
        wanted = set(self.markets) if only is None else set(only) & set(self.markets)
        quotes = {m: q for m, q in self.source.read().items() if m in wanted}
        check = self.check_source.read() if self.check_source is not None else None
        now = int(self.clock())  # after the reads: a chain-clock quote is never after `now`
        self.stored = self._read_stored()
        self.log(
            "saw",
            now=now,
            quotes={m: [fmt_wad(q.price), q.observed_at] for m, q in quotes.items()},
            check={m: [fmt_wad(q.price), q.observed_at] for m, q in (check or {}).items()}
            if check is not None
            else None,
        )

        problems, good = self._screen(quotes, check, now, wanted)
        plan = plan_push(
            good,
            self.stored,
            now,
            heartbeat_s=0 if force_reason is not None else int(self.settings.heartbeat_s),
            deviation_bps=self.settings.deviation_bps,
            max_jump_bps=self.bounds.max_jump_bps,
            split_large_moves=self.settings.split_large_moves,
            max_price_age_s=self.bounds.max_price_age,
            window_s=self.bounds.window,
            max_window_move_bps=self.bounds.max_window_move_bps,
        )
        if force_reason is not None and plan.pushes:
            plan = replace(plan, reason=force_reason)
        for problem in [*problems, *plan.refused]:
            if force_reason is not None and problem.kind == "not_newer":
                continue  # on demand, a quote from the Oracle's own second only means: wait
            self.metrics.inc("push_refused")
            self.log.warn(
                "refused", market=problem.market, kind=problem.kind, reason=problem.reason
            )
        for note in plan.notes:
            self.log.warn("alert", note=note)
        return plan, now

    # ------------------------------------------------------------ helpers

    def _screen(
        self,
        quotes: dict[str, Quote],
        check: dict[str, Quote] | None,
        now: int,
        wanted: set[str] | None = None,
    ) -> tuple[list[Problem], dict[str, Quote]]:
        """The quotes fit to plan with, and the problems of the others. A quote that is
        merely not newer than the Oracle's is left to `plan_push` (refused only when a push
        is due, so a source between two observations is not an alarm every tick)."""
        assert self.bounds is not None
        problems: list[Problem] = []
        good: dict[str, Quote] = {}
        for market, quote in sorted(quotes.items()):
            found = [
                p
                for p in validate(
                    quote,
                    now,
                    int(self.settings.max_source_age_s),
                    self.stored.get(market),
                    market=market,
                    max_future_s=0,
                )
                if p.kind != "not_newer"
            ]
            problems.extend(found)
            if not found:
                good[market] = quote
        if check is not None:
            for market in sorted(set(good) & set(check)):
                unfit = [
                    p
                    for p in validate(
                        check[market],
                        now,
                        int(self.settings.max_source_age_s),
                        self.stored.get(market),
                        market=market,
                    )
                    if p.kind != "not_newer"
                ]
                if unfit:  # a stale or broken check quote confirms nothing
                    reasons = "; ".join(p.reason for p in unfit)
                    problems.append(Problem(market, "unconfirmed", f"check source: {reasons}"))
                    good.pop(market)
            disagreements = cross_check(good, check, self.settings.max_disagreement_bps)
            problems.extend(disagreements)
            for problem in disagreements:
                good.pop(problem.market, None)
        for market in sorted((set(self.markets) if wanted is None else wanted) - set(quotes)):
            age = now - self.stored.get(market, Stored()).observed_at
            if age >= self.settings.heartbeat_s:
                problems.append(
                    Problem(
                        market,
                        "missing",
                        f"no quote from the source; the Oracle's price is {age} s old",
                    )
                )
        return problems, good

    def _send(self, plan: Plan) -> None:
        if not plan.pushes:
            if plan.refused:
                self.log("no_push", reason=plan.reason)
            return
        for i, push in enumerate(plan.pushes, start=1):
            names = list(push.prices)
            fn = self.chain.oracle.functions.set_prices(
                [self.markets[m] for m in names], list(push.prices.values()), push.observed_at
            )
            fields = {
                "why": plan.reason,
                "step": f"{i}/{len(plan.pushes)}",
                "observed_at": push.observed_at,
                "prices": {m: fmt_wad(p) for m, p in push.prices.items()},
            }
            sent = self.chain.send(fn, "set_prices", **fields)
            if sent.status != 1:
                self.metrics.inc("push_failed")
                self.log.error(
                    "push_failed", status=sent.status, reason=sent.reason, tx=sent.tx_hash, **fields
                )
                return  # a later step would build on a price that did not land
            self.metrics.inc("prices_pushed", len(names))
            self.metrics.inc("pushes")
            for market, price in push.prices.items():
                self.stored[market] = Stored(price, push.observed_at)
            self.log("pushed", tx=sent.tx_hash, block=sent.block, gas_used=sent.gas_used, **fields)

    def _read_stored(self) -> dict[str, Stored]:
        return {name: read_stored(self.chain, market) for name, market in self.markets.items()}

    def _gauges(self, now: int) -> None:
        for name, stored in self.stored.items():
            if stored.observed_at:
                self.metrics.set(f"price_age_s_{name}", now - stored.observed_at)


def read_stored(chain: Chain, market: int) -> Stored:
    """`Oracle.price_data(market)` as a `Stored`."""
    price, observed_at, window_ref_price, window_start, _spread_until = chain.call(
        chain.oracle.functions.price_data(market)
    )
    return Stored(int(price), int(observed_at), int(window_ref_price), int(window_start))
