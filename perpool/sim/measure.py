"""What a run measures: a sample of the protocol's state after each step (one JSON-RPC batch
of views), the contracts' events afterwards, the keepers' latency found by replaying
`Perp.is_liquidatable` at past blocks, and the verdict.

Everything the report says comes from the chain: the views at the step's block and the
events (`Liquidation`, `BadDebt`, `AutoDeleverage`, `OrderExecuted`, `OrderCancelled`,
`PriceUpdate`). Floats appear only in the series for plots; the verdict is decided on
integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perpool.sim.crowd import Crowd, Trader
from perpool.sim.node import Node

WAD = 10**18
SCAN_BATCH = 32  # past blocks asked per JSON-RPC batch when looking back
MAX_SCAN_BLOCKS = 5_000  # how far back a position's unhealthy stretch is looked for
CASCADE_MIN = 3  # liquidations in consecutive steps that make a cascade


def usd(wad: int) -> float:
    return wad / WAD


@dataclass
class Markets:
    names: dict[str, int]  # name -> market id

    def by_id(self, market: int) -> str:
        for name, mid in self.names.items():
            if mid == market:
                return name
        return str(market)


class Sampler:
    """Samples the state the report plots, at the latest block."""

    def __init__(self, node: Node, crowd: Crowd, markets: dict[str, int]) -> None:
        self.node, self.crowd, self.markets = node, crowd, markets
        self.vault = node.contract("Vault")
        self.perp = node.contract("Perp")
        self.oracle = node.contract("Oracle")
        self.reader = node.contract("PerpReader")
        self.risk = node.contract("RiskEngine")
        self.scale = crowd.scale

    def sample(self, step: int, label: str) -> dict[str, Any]:
        v, p = self.vault.functions, self.perp.functions
        block = self.node.head()
        calls = [
            v.pool_value(False), v.share_price(False), v.totalSupply(), v.insurance_amount(), p.bad_debt_total()
        ]
        names = sorted(self.markets)
        for name in names:
            m = self.markets[name]
            calls += [
                self.oracle.functions.price_data(m),
                self.reader.functions.market_state(m),
                self.reader.functions.rates(m),
                self.risk.functions.adl_state(m, True),
                self.risk.functions.adl_state(m, False),
            ]
        answers = self.node.chain.call_many(calls, block)
        pool_value, share_price, supply, insurance, bad_debt = answers[:5]
        if isinstance(pool_value, Exception) or isinstance(share_price, Exception):
            pool_value = share_price = None  # the pool is priced at a fresh price only (stale now)
        out: dict[str, Any] = {
            "step": step,
            "label": label,
            "block": block,
            "time": self.node.chain.timestamp(block),
            "prices": {},
            "observed_at": {},
            "pool_value_usd": None if pool_value is None else usd(pool_value),
            "share_price": None if share_price is None else usd(share_price),
            "share_price_wad": share_price,
            "lp_supply": supply / WAD,
            "insurance_usd": insurance / self.scale,
            "bad_debt_usd": bad_debt / self.scale,
            "oi_long_usd": {},
            "oi_short_usd": {},
            "funding_rate_per_h": {},
            "borrowing_rate_per_h": {},
            "pnl_factor_bps": {},
            "adl_triggered": {},
        }
        for i, name in enumerate(names):
            price, state, rates, adl_long, adl_short = answers[5 + 5 * i : 10 + 5 * i]
            out["prices"][name] = usd(price[0])  # the stored price, fresh or not
            out["observed_at"][name] = price[1]
            out["oi_long_usd"][name] = usd(state[4])
            out["oi_short_usd"][name] = usd(state[5])
            # PerpReader signs a side's rate > 0 when it receives; the series gives what longs pay
            out["funding_rate_per_h"][name] = -rates[5] / WAD
            out["borrowing_rate_per_h"][name] = rates[3] / WAD
            out["pnl_factor_bps"][name] = {"long": _factor(adl_long), "short": _factor(adl_short)}
            out["adl_triggered"][name] = bool(_triggered(adl_long) or _triggered(adl_short))
        unhealthy = self.unhealthy(block)
        out["open_positions"] = len(self.crowd.open_positions())
        out["unhealthy"] = len(unhealthy)
        out["pending_orders"] = sum(
            (t.order_id is not None) + (t.stop_id is not None) for t in self.crowd.traders
        )
        return out

    def unhealthy(self, block: int | str = "latest") -> list[Trader]:
        """Open crowd positions `Perp.is_liquidatable` calls liquidatable (a stale price
        makes the view revert: nothing can be liquidated then, so it counts as healthy)."""
        open_ = self.crowd.open_positions()
        answers = self.node.chain.call_many(
            [self.perp.functions.is_liquidatable(t.address, self.markets[t.market], t.is_long) for t in open_],
            block,
        )
        return [t for t, a in zip(open_, answers) if a is True]


def _factor(state: Any) -> int:
    return 0 if isinstance(state, Exception) else int(state[2])


def _triggered(state: Any) -> bool:
    return not isinstance(state, Exception) and bool(state[5])


# ---------------------------------------------------------------- events


class Events:
    """The contracts' events of a run, decoded into plain dicts."""

    def __init__(self, node: Node, markets: dict[str, int], scale: int, start: int, end: int) -> None:
        self.node, self.markets, self.scale = node, Markets(markets), scale
        perp, risk = node.contract("Perp"), node.contract("RiskEngine")
        orders, oracle = node.contract("OrderBook"), node.contract("Oracle")
        logs = node.chain.logs
        self.start, self.end = start, end
        self.liquidations = [self._liquidation(e) for e in logs(perp.events.Liquidation, start, end)]
        self.bad_debt = [self._bad_debt(e) for e in logs(perp.events.BadDebt, start, end)]
        self.adl = [self._adl(e) for e in logs(risk.events.AutoDeleverage, start, end)]
        self.executed = logs(orders.events.OrderExecuted, start, end)
        self.cancelled = logs(orders.events.OrderCancelled, start, end)
        self.pushes = [
            {
                "block": e["blockNumber"],
                "market": self.markets.by_id(e["args"]["market"]),
                "price": e["args"]["price"],
                "observed_at": e["args"]["observed_at"],
            }
            for e in logs(oracle.events.PriceUpdate, start, end)
        ]
        self._times: dict[int, int] = {}

    def time(self, block: int) -> int:
        if block not in self._times:
            self._times[block] = self.node.chain.timestamp(block)
        return self._times[block]

    def _liquidation(self, e: Any) -> dict[str, Any]:
        a = e["args"]
        return {
            "block": e["blockNumber"],
            "market": self.markets.by_id(a["market"]),
            "market_id": a["market"],
            "account": a["account"],
            "is_long": a["is_long"],
            "size_usd": usd(a["size_usd"]),
            "size_usd_wad": a["size_usd"],
            "price": usd(a["price"]),
            "keeper": a["fee_receiver"],
        }

    def _bad_debt(self, e: Any) -> dict[str, Any]:
        a = e["args"]
        return {
            "block": e["blockNumber"],
            "market": self.markets.by_id(a["market"]),
            "amount_usd": a["shortfall"] / self.scale,
            "insurance_usd": a["from_insurance"] / self.scale,
            "pool_usd": a["from_lps"] / self.scale,
            "from_lps": a["from_lps"],
        }

    def _adl(self, e: Any) -> dict[str, Any]:
        a = e["args"]
        return {
            "block": e["blockNumber"],
            "market": self.markets.by_id(a["market"]),
            "account": a["account"],
            "is_long": a["is_long"],
            "size_usd": usd(a["size_delta"]),
            "score": usd(a["score"]),
            "score_wad": a["score"],
            "pnl_factor_before_bps": a["pnl_factor_before_bps"],
            "pnl_factor_after_bps": a["pnl_factor_after_bps"],
        }

    def stamp(self) -> None:
        """Give every decoded event its block's time."""
        for item in (*self.liquidations, *self.bad_debt, *self.adl):
            item["time"] = self.time(item["block"])


# ---------------------------------------------------------------- keeper latency


def unhealthy_since(node: Node, trader_key: tuple[str, int, bool], before: int, floor: int) -> int:
    """The first block of the unbroken stretch ending at `before` - 1 in which the position
    was liquidatable (`before` itself when it was not liquidatable at `before` - 1)."""
    perp = node.contract("Perp")
    account, market, is_long = trader_key
    fn = perp.functions.is_liquidatable(account, market, is_long)
    first = before
    block = before - 1
    while block >= max(floor, before - MAX_SCAN_BLOCKS):
        blocks = list(range(block, max(floor, block - SCAN_BATCH + 1) - 1, -1))
        answers = _calls_at(node, fn, blocks)
        for b, answer in zip(blocks, answers):
            if answer is not True:
                return first
            first = b
        block = blocks[-1] - 1
    return first


def _calls_at(node: Node, fn: Any, blocks: list[int]) -> list[Any]:
    """`fn` at each of `blocks` in one batch; a revert (stale price) answers False."""
    w3 = node.w3
    try:
        with w3.batch_requests() as batch:
            for b in blocks:
                batch.add(fn.call(block_identifier=b))
            return list(batch.execute())
    except Exception:  # noqa: BLE001 (one reverted: ask one at a time)
        out: list[Any] = []
        for b in blocks:
            try:
                out.append(fn.call(block_identifier=b))
            except Exception:  # noqa: BLE001
                out.append(False)
        return out


def cascades(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of consecutive steps with liquidations holding at least `CASCADE_MIN` of them."""
    out: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []
    for s in [*steps, {"liquidations": 0}]:
        if s.get("liquidations"):
            run.append(s)
            continue
        if sum(r["liquidations"] for r in run) >= CASCADE_MIN:
            out.append(
                {
                    "start_block": run[0]["block"],
                    "end_block": run[-1]["block"],
                    "start_time": run[0]["time"],
                    "end_time": run[-1]["time"],
                    "count": sum(r["liquidations"] for r in run),
                    "notional_usd": sum(r["liquidated_usd"] for r in run),
                }
            )
        run = []
    return out
