"""The state machines: random programs of LP, trading, oracle, time, liquidation, ADL, config
and pause steps over the real contracts, with every invariant checked after every step.

Each step is one transaction (direct fills), mined at a pinned block time `rpc.now`, with
one batched observation of the whole protocol before and after (`observe`). Every rule
first predicts its outcome from the observation before it and the published formulas
(docs/perp.md, docs/risk.md, docs/vault.md, docs/oracle.md, restated in invariant_kit.py):
either the exact refusal reason, or the exact change (position, fees, payout, bucket
deltas). A refusal must revert with that reason and leave the observation identical; a
success must log exactly the predicted change. The invariants then compare the two
observations.

Quantities the contracts do not expose, and how they are obtained:
- the side sums Σ size × index snapshot (Perp's `_sums`) are Σ over the open positions of
  each one's rounded term (the sums telescope in `_write_position`), so the pool value is
  recomputed in Python from the tracked positions, the indices and the oracle prices;
- funding realised to date is Σ PositionUpdate.funding, plus for liquidations (whose event
  has no funding field) the position's pending funding read just before, rounded as Perp
  rounds it inside `left`;
- donations (plain token transfers to the Vault) are counted by the machine.

LP orders (LpOrderRules) are modelled like the positions: each live order as placed, its
escrow (a deposit's amount + fee, a redeem's fee; a redeem's shares held by the OrderBook).
A batch is predicted order by order in id order, on the state the earlier fills left (only
the pool amount and the share supply move, so the Python pool value prices each fill):
pending, expired, refused with the Vault's code, or filled with the Vault's shares or amount.

The LP share-price invariant (a deposit or redeem moves the price only by its fee and one
unit of rounding, a donation not at all) is asserted at both values wherever the pool
value's trader-pnl cap (`max_pnl_factor_bps`) does not bind. Where it binds, the cap is a
fraction of the pool amount, so a deposit of X would raise the liability the pool value
counts by that fraction of X; the Vault refuses such flows ("vault: deposit would
dilute", "vault: redeem beyond its share": a finding of these machines, pinned by `test_regression__pnl_cap_binds__*`), and the
invariant is asserted at the value the flow is priced at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import invariant_kit as K
from invariant_kit import (
    BPS,
    DEAD,
    MAX_UINT,
    WAD,
    Expect,
    Pos,
    Reverted,
    bps_of,
    mul_div,
    pnl_usd,
    to_tokens,
)

DECIMALS = (6, 18)  # collateral decimals every machine runs with


class Refused(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class World:
    """One deployed protocol and its actors (addresses lower-case)."""

    label: str
    rpc: K.Rpc
    token: K.Contract
    vault: K.Contract
    perp: K.Contract
    conf: K.Contract
    oracle: K.Contract
    risk: K.Contract
    chain: Any
    scale: int
    unit: int
    markets: tuple[int, ...]
    seed_prices: dict[int, int]
    admin: str
    keeper: str
    lps: tuple[str, ...]
    traders: tuple[str, ...]
    liquidators: tuple[str, ...]
    attacker: str
    oracle_cfg: Any = None
    decimals: int = 0
    mint_fee_bps: int = 0
    burn_fee_bps: int = 0
    cooldown: int = 0
    orders: K.Contract | None = None  # the OrderBook (LP orders)
    min_fee: int = 0  # its min_execution_fee, timeout and expiry
    timeout: int = 0
    expiry: int = 0

    @property
    def actors(self) -> tuple[str, ...]:
        return (self.admin, self.keeper, *self.lps, *self.traders, *self.liquidators, self.attacker)

    @property
    def keys(self) -> list[tuple[int, int, bool]]:
        return [(t, m, side) for t in range(len(self.traders)) for m in self.markets for side in (True, False)]


@dataclass
class Step:
    kind: str
    pre: dict
    time_pre: dict | None = None  # the observation before this step's time advance
    dt: int = 0
    refused: str | None = None
    events: list = field(default_factory=list)
    deltas: dict = field(default_factory=dict)  # expected bucket deltas
    lp_action: str | None = None  # deposit / redeem / donate / fund_insurance
    amount: int = 0
    fee: int = 0
    prices_used: list = field(default_factory=list)  # (market, price) of every fill
    liquidation: tuple | None = None  # (was liquidatable, liquidated)
    lp_fills: list = field(default_factory=list)  # LP order fills in order: (action, amount, fee, shares)


@dataclass
class LpOrder:
    """A live LP order as placed (token units; shares 18 decimals)."""

    owner: str
    kind: int  # LP_DEPOSIT or LP_REDEEM
    amount: int  # escrowed tokens of a deposit
    shares: int  # escrowed shares of a redeem
    min_out: int
    fee: int
    placed_at: int
    floor: int

    def escrow(self) -> int:
        return self.fee + (self.amount if self.kind == LP_DEPOSIT else 0)


LP_DEPOSIT, LP_REDEEM = 5, 6  # OrderBook kinds
EXPIRED, BY_OWNER = 34, 40  # OrderBook reason codes
VAULT_CODES = {  # the Vault's LP refusals (Vault.lp_reason)
    "vault: paused": 48, "vault: first deposit too small": 49, "vault: pool value zero": 50, "vault: zero shares": 51,
    "vault: slippage": 52, "vault: deposit would dilute": 53, "vault: zero amount": 54, "vault: reserved": 55,
    "vault: redeem beyond its share": 56,
}


# ---------------------------------------------------------------- the machine


class Base(RuleBasedStateMachine):
    """Infrastructure shared by both machines: observation, prediction, bookkeeping, and
    the invariants. Rules live in the mixins below."""

    world: World

    def __init__(self, world: World):
        super().__init__()
        self.w = world
        self.rpc = world.rpc
        # Ape isolates per test, not per example: each example restores this snapshot
        self.snapshot_id = world.chain.snapshot()
        head = int(self.rpc.request("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        self.rpc.mine_at(head + 1)
        self.model: dict[tuple, Pos] = {}
        self.donated = 0
        self.funding_realised = 0
        self.prices = dict(world.seed_prices)
        self.step_id = 0
        self._obs_id = -1
        self._obs: dict = {}
        self.step: Step | None = None
        self.lp_orders: dict[int, LpOrder] = {}  # live LP orders by id
        # a fresh price for every market, observed now
        logs = self.rpc.send(world.keeper, world.oracle, "set_prices", list(world.markets),
                             [self.prices[m] for m in world.markets], self.rpc.now)
        assert logs
        self.stats = K.Counter()

    def teardown(self):
        K.STATS[self.w.label].update(self.stats)
        self.w.chain.restore(self.snapshot_id)

    # ------------------------------------------------------------ observation

    def observe(self) -> dict:
        w = self.w
        names: list = []
        calls: list = []

        def add(name, *call):
            names.append(name)
            calls.append(call)

        add("bal_vault", w.token, "balanceOf", w.vault.address)
        for a in w.actors:
            add(("bal", a), w.token, "balanceOf", a)
        for fn in ("pool_amount", "collateral_amount", "escrow_amount", "insurance_amount", "claimable_amount",
                   "reserved_amount", "totalSupply", "paused", "lp_orders_only"):
            add(fn, w.vault, fn)
        for a in (*w.lps, DEAD, w.orders.address):
            add(("shares", a), w.vault, "balanceOf", a)
        for a in (*w.liquidators, w.attacker, *w.lps, w.keeper):
            add(("claimable", a), w.vault, "claimable", a)
        add("next_order_id", w.orders, "next_order_id")
        for oid in sorted(self.lp_orders):
            add(("order", oid), w.orders, "get_order", oid)
        for a in w.lps:
            add(("last_deposit", a), w.vault, "last_deposit_at", a)
        add(("pv", True), w.vault, "pool_value", True)
        add(("pv", False), w.vault, "pool_value", False)
        add("perp_paused", w.perp, "paused")
        add("bad_debt_total", w.perp, "bad_debt_total")
        add("max_pnl_factor", w.perp, "max_pnl_factor_bps")
        add("conf_paused", w.conf, "paused")
        for m in w.markets:
            add(("words", m), w.perp, "market_words", m)
            add(("idx", m), w.perp, "current_indices", m)
            add(("rates", m), w.perp, "current_rates", m)
            add(("status", m), w.perp, "market_status", m)
            add(("cfg", m), w.conf, "configs", m)
            add(("risk", m), w.conf, "risk_configs", m)
            add(("pd", m), w.oracle, "price_data", m)
            for side in (True, False):
                add(("oi", m, side), w.perp, "open_interest", m, side)
                add(("price", m, side), w.oracle, "get_price", m, side)
        for key in w.keys:
            t, m, side = key
            add(("pos", key), w.perp, "get_position", w.traders[t], m, side)
            if key in self.model:
                add(("liq", key), w.perp, "is_liquidatable", w.traders[t], m, side)
        return dict(zip(names, self.rpc.batch(calls)))

    def current(self) -> dict:
        """The observation of the chain as it is now (one per step: the invariants share it)."""
        if self._obs_id != self.step_id:
            self._obs = self.observe()
            self._obs_id = self.step_id
        return self._obs

    def begin(self, kind: str) -> dict:
        K.STEPS[self.w.label] += 1
        self.stats[f"rule:{kind}"] += 1
        pre = self.current()
        self.step_id += 1
        self.step = Step(kind=kind, pre=pre)
        return pre

    def advance(self, dt: int) -> dict:
        """Let dt seconds pass (one empty block at the new time); returns the new observation,
        which becomes the step's `pre` (what a refusal must leave unchanged)."""
        step = self.step
        step.time_pre = step.pre
        step.dt += dt
        self.rpc.mine_at(self.rpc.now + dt)
        step.pre = self.observe()
        return step.pre

    # ------------------------------------------------------------ helpers

    def addr(self, key) -> str:
        return self.w.traders[key[0]]

    def pick_key(self, pick: int, existing: int = 4) -> tuple:
        """Mostly (pick % 5 < existing) an open position, else any of the 12 keys (key i for
        pick = 5 i + 4)."""
        if self.model and pick % 5 < existing:
            keys = sorted(self.model)
            return keys[pick // 5 % len(keys)]
        return self.w.keys[pick // 5 % len(self.w.keys)]

    def usd(self, dollars: float) -> int:
        return int(dollars * self.w.unit)

    @staticmethod
    def price_of(obs: dict, m: int, maximize: bool):
        p = obs[("price", m, maximize)]
        if isinstance(p, Reverted):
            raise Refused(p.reason)
        return p

    def exit_price(self, obs: dict, m: int, maximize: bool) -> int:
        # no reference feed is set: the exit price is the keeper price while fresh
        p = obs[("price", m, maximize)]
        if isinstance(p, Reverted):
            raise Refused("oracle: no fresh price")
        return p

    def stale(self, obs: dict, m: int) -> bool:
        return obs[("pd", m)].observed_at + self.w.oracle_cfg.max_price_age < self.rpc.now

    def send(self, sender: str, contract: K.Contract, fn: str, *args, expect: str | None = None) -> list | None:
        """Send; a refusal must be `expect`, a success must have been expected (None)."""
        step = self.step
        try:
            logs = self.rpc.send(sender, contract, fn, *args)
        except Reverted as r:
            assert expect is not None, f"{fn}{args}: unexpected refusal {r.reason!r}"
            assert r.reason == expect, f"{fn}{args}: refused with {r.reason!r}, expected {expect!r}"
            step.refused = r.reason
            self.stats[f"refused:{step.kind}:{r.reason}"] += 1
            return None
        assert expect is None, f"{fn}{args}: succeeded, expected the refusal {expect!r}"
        w = self.w
        step.events = K.events(logs, w.perp, w.vault, w.risk, w.oracle, w.conf, w.token, w.orders)
        self.stats[f"ok:{step.kind}"] += 1
        return step.events

    def evs(self, name: str) -> list[dict]:
        return [e for e in self.step.events if e["_event"] == name]

    # ------------------------------------------------------------ predictions

    def check_position(self, obs, new: Pos, m: int, is_long: bool, price: int, idx) -> None:
        cfg, risk = obs[("cfg", m)], obs[("risk", m)]
        if new.size_tokens == 0:
            raise Refused("perp: position too small")
        collateral_wad = new.collateral * self.w.scale
        if collateral_wad < cfg.min_collateral_usd:
            raise Refused("perp: collateral below min")
        if new.size_usd * BPS > cfg.max_leverage_bps * collateral_wad:
            raise Refused("perp: leverage too high")
        v = K.values(new, is_long, price, idx, cfg, risk, self.w.scale)
        if v.remaining < v.maintenance:
            raise Refused("perp: would be liquidatable")

    def predict_increase(self, obs, key, collateral: int, size: int, acceptable: int) -> Expect:
        _, m, is_long = key
        scale = self.w.scale
        cfg, risk = obs[("cfg", m)], obs[("risk", m)]
        pos = self.model.get(key, Pos())
        if collateral == 0 and size == 0:
            raise Refused("perp: nothing to do")
        if size != 0:
            if obs["perp_paused"]:
                raise Refused("perp: paused")
            if obs[("status", m)] != 0:
                raise Refused("perp: market closing")
        if pos.size_usd == 0:
            if size == 0:
                raise Refused("perp: zero size")
            if collateral == 0:
                raise Refused("perp: zero collateral")
        price = 0
        if size != 0:
            price = self.price_of(obs, m, is_long)
            if (is_long and price > acceptable) or (not is_long and price < acceptable):
                raise Refused("perp: price not acceptable")
        idx = obs[("idx", m)]
        s = K.pending(pos, is_long, idx, scale)
        fee = to_tokens(bps_of(size, cfg.position_fee_bps, True), scale, True)
        gross = pos.collateral + collateral + s.funding_received
        owed = s.borrow_fee + fee + s.funding_paid
        if gross < owed:
            raise Refused("perp: fees exceed collateral")
        new = Pos(
            pos.size_usd + size,
            pos.size_tokens + (mul_div(size, WAD, price, not is_long) if size else 0),
            gross - owed,
            idx.borrow,
            idx.funding_long if is_long else idx.funding_short,
        )
        if size != 0:
            oi_usd = obs[("oi", m, is_long)][0]
            if oi_usd + size > cfg.max_open_interest_usd:
                raise Refused("perp: max open interest")
            total = oi_usd + obs[("oi", m, not is_long)][0]
            change = K.reserve_tokens(total + size, cfg.reserve_factor_bps, scale) - K.reserve_tokens(
                total, cfg.reserve_factor_bps, scale)
            if obs["reserved_amount"] + change > obs["pool_amount"]:
                raise Refused("perp: reserve exceeded")
            self.check_position(obs, new, m, is_long, price, idx)
        cut = bps_of(fee, risk.insurance_cut_bps, False)
        to_pool = owed - s.funding_received
        return Expect(
            position=new, price=price, size_delta=size, collateral_in=collateral, position_fee=fee,
            borrow_fee=s.borrow_fee, funding=s.funding_received - s.funding_paid,
            pool_delta=to_pool - cut, collateral_delta=collateral - to_pool, insurance_delta=cut,
        )

    def cap_profit(self, obs, m: int, is_long: bool, pnl: int, price: int) -> int:
        usd, tokens = obs[("oi", m, is_long)]
        side_pnl = pnl_usd(usd, tokens, price, is_long)
        cap = bps_of(obs["pool_amount"] * self.w.scale, obs[("risk", m)].max_pnl_factor_for_traders_bps, False)
        profit = pnl
        if side_pnl > cap:
            profit = mul_div(profit, cap, side_pnl, False)
            self.stats["profit capped"] += 1
        return min(profit, cap // self.w.scale)

    def predict_decrease(self, obs, key, collateral_delta: int, size: int, price: int, checked: bool = True,
                         insurance: int | None = None) -> Expect:
        """Perp._decrease (after the caller's checks)."""
        _, m, is_long = key
        scale = self.w.scale
        cfg, risk = obs[("cfg", m)], obs[("risk", m)]
        pos = self.model[key]
        closing = size == pos.size_usd
        idx = obs[("idx", m)]
        s = K.pending(pos, is_long, idx, scale)
        fee = to_tokens(bps_of(size, cfg.position_fee_bps, True), scale, True)
        closed = pos.size_tokens if closing else mul_div(pos.size_tokens, size, pos.size_usd, not is_long)
        pnl = K.signed_tokens(pnl_usd(size, closed, price, is_long), scale)
        if pnl > 0:
            pnl = self.cap_profit(obs, m, is_long, pnl, price)
        settle = pnl + s.funding_received - s.borrow_fee - fee - s.funding_paid
        amount_out = shortfall = 0
        new = Pos()
        if closing:
            left = pos.collateral + settle
            if left > 0:
                amount_out = left
            else:
                shortfall = -left
        else:
            if collateral_delta > pos.collateral:
                raise Refused("perp: insufficient collateral")
            remaining = pos.collateral - collateral_delta
            if settle >= 0:
                amount_out = collateral_delta + settle
            else:
                remaining += settle
                if remaining < 0:
                    raise Refused("perp: insufficient collateral")
                amount_out = collateral_delta
            new = Pos(pos.size_usd - size, pos.size_tokens - closed, remaining, idx.borrow,
                      idx.funding_long if is_long else idx.funding_short)
        if checked and not closing:
            self.check_position(obs, new, m, is_long, price, idx)
        if new.size_usd != 0 and new.size_tokens == 0:
            raise Refused("perp: position too small")
        fund = obs["insurance_amount"] if insurance is None else insurance
        if shortfall == 0:
            insurance_delta = bps_of(fee, risk.insurance_cut_bps, False)
            cover = 0
        else:
            cover = min(shortfall, fund)
            insurance_delta = -cover
        collateral_change = new.collateral - pos.collateral
        return Expect(
            position=new, price=price, size_delta=-size, amount_out=amount_out, position_fee=fee,
            borrow_fee=s.borrow_fee, funding=s.funding_received - s.funding_paid, pnl=pnl, bad_debt=shortfall,
            pool_delta=-amount_out - collateral_change - insurance_delta, collateral_delta=collateral_change,
            insurance_delta=insurance_delta, bad_debt_lps=shortfall - cover,
            extra={"tokens_closed": closed},
        )

    def predict_liquidation(self, obs, key, insurance: int) -> Expect:
        _, m, is_long = key
        scale = self.w.scale
        pos = self.model.get(key)
        if pos is None:
            raise Refused("perp: no position")
        price = self.price_of(obs, m, not is_long)
        cfg, risk = obs[("cfg", m)], obs[("risk", m)]
        v = K.values(pos, is_long, price, obs[("idx", m)], cfg, risk, scale)
        if v.remaining >= v.maintenance:
            raise Refused("perp: position healthy")
        close_fee = to_tokens(v.close_fee, scale, True)
        left = (pos.collateral + K.signed_tokens(v.pnl, scale) + K.signed_tokens(v.funding, scale)
                - (to_tokens(v.borrowing_fee, scale, True) + close_fee))
        fee = to_tokens(risk.liquidation_fee_usd + bps_of(pos.size_usd, risk.liquidation_fee_bps, False), scale, False)
        equity, shortfall = max(left, 0), max(-left, 0)
        from_position = min(equity, fee)
        topup = fee - from_position
        cut = 0
        if shortfall == 0:
            kept = min(close_fee + equity, pos.collateral)
            if kept > from_position:
                cut = bps_of(kept - from_position, risk.insurance_cut_bps, False)
        from_insurance = cover = 0
        if topup or shortfall:
            fund = insurance + cut
            from_insurance = min(topup, fund)
            cover = min(shortfall, fund - from_insurance)
        insurance_delta = cut - from_insurance - cover
        return Expect(
            price=price, position_fee=fee, bad_debt=shortfall, funding=K.signed_tokens(v.funding, scale),
            pool_delta=pos.collateral - fee - insurance_delta, collateral_delta=-pos.collateral,
            insurance_delta=insurance_delta, bad_debt_lps=shortfall - cover,
            extra={"values": v, "from_insurance": from_insurance, "cut": cut, "fee": fee},
        )

    # ------------------------------------------------------------ bookkeeping

    def expect_deltas(self, **deltas: int) -> None:
        for k, v in deltas.items():
            self.step.deltas[k] = self.step.deltas.get(k, 0) + v

    def expect_delta(self, key, v: int) -> None:
        """A delta of a per-account figure: ("shares", account) or ("claimable", account)."""
        self.step.deltas[key] = self.step.deltas.get(key, 0) + v

    def apply_update(self, key, exp: Expect, event: dict) -> None:
        """A PositionUpdate: matches the prediction field by field; the model follows it."""
        _, m, is_long = key
        got = {k: event[k] for k in ("size_usd", "size_tokens", "collateral", "borrow_index", "funding_index", "price",
                                      "size_delta", "collateral_in", "amount_out", "position_fee", "borrow_fee",
                                      "funding", "pnl", "bad_debt")}
        p = exp.position
        want = {"size_usd": p.size_usd, "size_tokens": p.size_tokens, "collateral": p.collateral,
                "borrow_index": p.borrow_index, "funding_index": p.funding_index, "price": exp.price,
                "size_delta": exp.size_delta, "collateral_in": exp.collateral_in, "amount_out": exp.amount_out,
                "position_fee": exp.position_fee, "borrow_fee": exp.borrow_fee, "funding": exp.funding,
                "pnl": exp.pnl, "bad_debt": exp.bad_debt}
        assert got == want, f"PositionUpdate differs from the formulas: {_diff(got, want)}"
        assert (event["account"], event["market"], event["is_long"]) == (self.addr(key), m, is_long)
        if p.size_usd == 0:
            self.model.pop(key, None)
        else:
            self.model[key] = p
        self.funding_realised += event["funding"]
        if exp.price:
            self.step.prices_used.append((m, is_long, exp.price, event["size_delta"]))
        self.expect_deltas(pool_amount=exp.pool_delta, collateral_amount=exp.collateral_delta,
                           insurance_amount=exp.insurance_delta, bad_debt_total=exp.bad_debt_lps)

    # ------------------------------------------------------------ Python pool value

    def pool_value(self, obs: dict, maximize: bool):
        """Perp.pool_value from the pool amount, the tracked positions (the side sums),
        the indices and the oracle prices: (value, capped) or a Reverted."""
        scale = self.w.scale
        pool = obs["pool_amount"] * scale
        assets, trader_pnl = pool, 0
        for m in self.w.markets:
            idx = obs[("idx", m)]
            if obs[("oi", m, True)][0] == 0 and obs[("oi", m, False)][0] == 0:
                continue
            for is_long in (True, False):
                usd, tokens = obs[("oi", m, is_long)]
                if usd == 0:
                    continue
                mine = [p for (t, mm, s), p in self.model.items() if mm == m and s == is_long]
                borrow_sum = sum(mul_div(p.size_usd, p.borrow_index, WAD) for p in mine)
                funding_sum = sum(K.trunc_mul_wad(p.size_usd, p.funding_index) for p in mine)
                assets += mul_div(usd, idx.borrow, WAD) - borrow_sum
                index = idx.funding_long if is_long else idx.funding_short
                trader_pnl += K.trunc_mul_wad(usd, index) - funding_sum
                p = obs[("price", m, is_long != maximize)]
                if isinstance(p, Reverted):
                    return p
                trader_pnl += pnl_usd(usd, tokens, p, is_long)
        cap = bps_of(pool, obs["max_pnl_factor"], False)
        capped = trader_pnl > cap
        value = assets - min(trader_pnl, cap)
        return max(value, 0), capped

    # ------------------------------------------------------------ invariants

    def run_invariants(self) -> None:
        """Every invariant, as hypothesis runs them after a step (for fixed programs)."""
        for name in dir(Base):
            if name.startswith("inv_"):
                getattr(self, name)()

    @invariant()
    def inv_solvency(self):
        """The Vault holds every token it owes: balance == pool + collateral + escrow +
        insurance + claimable + donations (so >=)."""
        o = self.current()
        owed = (o["pool_amount"] + o["collateral_amount"] + o["escrow_amount"] + o["insurance_amount"]
                + o["claimable_amount"])
        assert o["bal_vault"] >= owed
        assert o["bal_vault"] == owed + self.donated, (o["bal_vault"], owed, self.donated)

    @invariant()
    def inv_aggregates_equal_positions(self):
        """Open interest (USD and tokens, per market side), the collateral bucket, the reserve
        and the claimable total equal their sums over positions and accounts."""
        o, w = self.current(), self.w
        for m in w.markets:
            for side in (True, False):
                mine = [p for (t, mm, s), p in self.model.items() if mm == m and s == side]
                assert o[("oi", m, side)] == (sum(p.size_usd for p in mine), sum(p.size_tokens for p in mine))
        assert o["collateral_amount"] == sum(p.collateral for p in self.model.values())
        reserved = sum(
            K.reserve_tokens(o[("oi", m, True)][0] + o[("oi", m, False)][0], o[("cfg", m)].reserve_factor_bps, w.scale)
            for m in w.markets)
        assert o["reserved_amount"] == reserved
        assert o["escrow_amount"] == sum(x.escrow() for x in self.lp_orders.values())
        assert o[("shares", w.orders.address)] == sum(x.shares for x in self.lp_orders.values())
        assert o["claimable_amount"] == sum(o[("claimable", a)] for a in (*w.liquidators, w.attacker, *w.lps, w.keeper))

    @invariant()
    def inv_positions_as_logged(self):
        """Every stored position is what its last event said (none changes silently)."""
        o = self.current()
        for key in self.w.keys:
            assert Pos.of(o[("pos", key)]) == self.model.get(key, Pos()), key

    @invariant()
    def inv_money_moves_only_as_modelled(self):
        """Pool, collateral, insurance, claimable, bad debt and share supply move exactly by the
        step's modelled flows: fees, realised PnL, funding, bad debt, deposits, redeems."""
        if self.step is None:
            return
        o, pre, w = self.current(), self.step.pre, self.w
        # per account: every LP's shares and the OrderBook's, and what the LPs, the keeper and
        # the attacker are owed (liquidators' credits are in the total)
        per_account = [("shares", a) for a in (*w.lps, w.orders.address)]
        per_account += [("claimable", a) for a in (*w.lps, w.keeper, w.attacker)]
        for k in ("pool_amount", "collateral_amount", "insurance_amount", "claimable_amount", "bad_debt_total",
                  "totalSupply", "escrow_amount", *per_account):
            assert o[k] == pre[k] + self.step.deltas.get(k, 0), (self.step.kind, k, o[k] - pre[k], self.step.deltas.get(k, 0))

    @invariant()
    def inv_refusal_changes_nothing(self):
        if self.step is not None and self.step.refused is not None:
            o, pre = self.current(), self.step.pre
            assert o == pre, f"{self.step.kind} refused ({self.step.refused}) but changed {_diff(o, pre)}"

    @invariant()
    def inv_pool_value_formula(self):
        """Vault.pool_value (Perp's) equals the documented formula recomputed from the positions."""
        o = self.current()
        for maximize in (True, False):
            mine = self.pool_value(o, maximize)
            got = o[("pv", maximize)]
            if isinstance(mine, Reverted):
                assert got == Reverted("oracle: stale price"), got
            else:
                assert got == mine[0], (maximize, got, mine)

    @invariant()
    def inv_indices(self):
        """Indices accrue by the documented rates only with time: the borrow index and a
        receiving side's funding index never decrease, a paying side's never increases,
        within a second nothing moves, and funding received per step <= funding paid (the
        difference, the receivers' rounding and the 10x cap, stays in the pool)."""
        step = self.step
        if step is None:
            return
        o = self.current()
        for m in self.w.markets:
            a, b = step.pre[("idx", m)], o[("idx", m)]
            assert a == b, f"indices moved within a second: {a} -> {b}"
            clock = o[("words", m)][0]
            assert clock & (2**32 - 1) <= self.rpc.now
            assert (clock >> 32) & (2**80 - 1) <= b.borrow  # stored <= accrued to now
            if step.time_pre is None:
                continue
            t0 = step.time_pre
            i0, i1 = t0[("idx", m)], step.pre[("idx", m)]
            assert i1.borrow - i0.borrow == t0[("rates", m)][0] * step.dt
            assert i1.borrow >= i0.borrow
            long_usd, short_usd = t0[("oi", m, True)][0], t0[("oi", m, False)][0]
            d_long, d_short = i1.funding_long - i0.funding_long, i1.funding_short - i0.funding_short
            if long_usd == 0 or short_usd == 0 or long_usd == short_usd:
                assert d_long == d_short == 0
                continue
            payer_long = long_usd > short_usd
            d_pay, d_recv = (d_long, d_short) if payer_long else (d_short, d_long)
            payer_oi, recv_oi = (long_usd, short_usd) if payer_long else (short_usd, long_usd)
            assert d_pay <= 0 <= d_recv
            rate = t0[("rates", m)][1 if payer_long else 2]
            assert d_pay == rate * step.dt
            # the receivers' increment is floor(paid x payer / receiver), capped at 10x, from the
            # market's last update: check it at both ends
            last = t0[("words", m)][0] & (2**32 - 1)
            t_start = self.rpc.now - step.dt
            paid0, paid1 = -rate * (t_start - last), -rate * (self.rpc.now - last)
            assert d_recv == K.received_per_usd(paid1, payer_oi, recv_oi) - K.received_per_usd(paid0, payer_oi, recv_oi)

    @invariant()
    def inv_funding_conserved(self):
        """Funding paid = funding received + dust the pool keeps. Per market, over the interval
        since its last update (WAD USD): receivers' OI x their index rise <= payers' OI x
        their index fall. Over every position ever (token units): realised (events) +
        pending (open positions) <= 0."""
        o = self.current()
        for m in self.w.markets:
            word = o[("words", m)][1]
            stored_long, stored_short = (word & (2**128 - 1)) - 2**127, (word >> 128) - 2**127
            idx = o[("idx", m)]
            d_long, d_short = idx.funding_long - stored_long, idx.funding_short - stored_short
            long_usd, short_usd = o[("oi", m, True)][0], o[("oi", m, False)][0]
            paid = long_usd * max(-d_long, 0) + short_usd * max(-d_short, 0)
            received = long_usd * max(d_long, 0) + short_usd * max(d_short, 0)
            assert received <= paid, (m, received, paid)
        pend = 0
        for (t, m, side), p in self.model.items():
            s = K.pending(p, side, o[("idx", m)], self.w.scale)
            pend += s.funding_received - s.funding_paid
        assert self.funding_realised + pend <= 0, (self.funding_realised, pend)

    @invariant()
    def inv_no_stale_price_used(self):
        """Every fill, liquidation and ADL used the market's fresh keeper price (min or max as
        documented); a deposit or redeem priced with open interest needs every such market fresh."""
        step = self.step
        if step is None or step.refused is not None:
            return
        pre = step.pre
        for m, is_long, price, size_delta in step.prices_used:
            assert not self.stale(pre, m), f"a stale price was used in {step.kind}"
            opening = size_delta > 0
            maximize = is_long if opening else not is_long
            assert price == pre[("price", m, maximize)], (step.kind, price)
        if step.lp_action in ("deposit", "redeem"):
            for m in self.w.markets:
                if pre[("oi", m, True)][0] or pre[("oi", m, False)][0]:
                    assert not self.stale(pre, m)

    @invariant()
    def inv_no_zero_share_mint(self):
        for e in self.step.events if self.step else ():
            if e["_event"] == "Deposit":
                assert e["shares"] > 0
            if e["_event"] == "Transfer" and e["_contract"] == "vault" and e["sender"] == "0x" + "0" * 40:
                assert e["value"] > 0

    @invariant()
    def inv_share_price_lp_actions(self):
        """A deposit, redeem, donation or insurance top-up moves the LP share price only by
        the documented rounding and fees: a donation or top-up not at all; a deposit or
        redeem never lowers it and raises it by at most its own fee plus one share-wei or
        token unit of rounding. (Checked where the pool value's profit cap does not bind:
        there the cap itself moves with the pool amount, see the module docstring.) LP
        orders: placing or cancelling one moves nothing; a batch that fills some is checked
        fill by fill, on the states between them (the pool amount and supply each fill
        leaves, valued by the Python pool value), and must end at the observed state."""
        step = self.step
        if step is None or step.refused is not None or step.lp_action is None:
            return
        o, pre = self.current(), step.pre
        if step.lp_action == "orders":
            state = dict(pre)
            for action, amount, fee, shares in step.lp_fills:
                sign = 1 if action == "deposit" else -1
                after = {**state, "pool_amount": state["pool_amount"] + sign * amount,
                         "totalSupply": state["totalSupply"] + sign * shares}
                for maximize in (True, False):
                    before_v, after_v = self.pool_value(state, maximize), self.pool_value(after, maximize)
                    assert not isinstance(before_v, Reverted) and not isinstance(after_v, Reverted)
                    self._check_lp_move(action, maximize, before_v[0], state["totalSupply"], after_v[0],
                                        after["totalSupply"], amount, fee, before_v[1] or after_v[1])
                state = after
            assert (state["pool_amount"], state["totalSupply"]) == (o["pool_amount"], o["totalSupply"])
            if not step.lp_fills:
                for maximize in (True, False):
                    assert (pre[("pv", maximize)], pre["totalSupply"]) == (o[("pv", maximize)], o["totalSupply"])
            return
        S, S2 = pre["totalSupply"], o["totalSupply"]
        for maximize in (True, False):
            V, V2 = pre[("pv", maximize)], o[("pv", maximize)]
            if step.lp_action in ("donate", "fund_insurance", "claim", "order_placed", "order_cancelled"):
                assert (V, S) == (V2, S2), f"{step.lp_action} moved the share price"
                continue
            before, after = self.pool_value(pre, maximize), self.pool_value(o, maximize)
            assert not isinstance(before, Reverted) and not isinstance(after, Reverted)
            self._check_lp_move(step.lp_action, maximize, V, S, V2, S2, step.amount, step.fee, before[1] or after[1])

    def _check_lp_move(self, action: str, maximize: bool, V: int, S: int, V2: int, S2: int, amount: int, fee: int,
                       capped: bool) -> None:
        """One deposit or redeem of `amount` token units (its fee `fee`) took the pool value
        at `maximize` from V to V2 and the supply from S to S2."""
        scale = self.w.scale
        rise = V2 * S - V * S2  # (new price - old price) x S x S2
        priced_at = maximize if action == "deposit" else not maximize
        if capped:
            # the pnl cap moves with the pool amount: the Vault's own check holds at the
            # value the flow was priced at; the other value is not linear here
            self.stats[f"{action} under the pnl cap"] += 1
            if priced_at:
                if action == "deposit":
                    assert rise >= 0, "a deposit under the pnl cap lowered the share price"
                else:
                    assert rise <= S * (fee + 1) * scale, "a redeem under the pnl cap raised the price beyond its fee"
            return
        if action == "deposit":
            assert V2 == V + amount * scale
            assert rise >= 0, "a deposit lowered the share price"
            if maximize:  # the value deposits are priced at
                assert rise < fee * scale * S + V, "a deposit raised the share price beyond its fee"
        else:
            assert V2 == V - amount * scale
            assert rise >= 0, "a redeem lowered the share price"
            if not maximize:  # the value redemptions are priced at
                assert rise <= S * (fee + 1) * scale + S, "a redeem raised the share price beyond its fee"

    @invariant()
    def inv_lp_orders_as_placed(self):
        """Every live LP order is stored as placed (market 0, amount or shares, least
        accepted, fee, placed_at, floor); the next id follows the orders placed."""
        o = self.current()
        for oid, x in self.lp_orders.items():
            s = o[("order", oid)]
            assert (s.owner, s.market, s.kind, s.collateral_delta, s.size_delta, s.acceptable_price, s.trigger_price,
                    s.execution_fee, s.placed_at, s.price_floor) == (
                x.owner, 0, x.kind, x.amount, x.shares, x.min_out, 0, x.fee, x.placed_at, x.floor), oid
        assert all(oid < o["next_order_id"] for oid in self.lp_orders)

    @invariant()
    def inv_health_function(self):
        """is_liquidatable agrees with the documented health function for every position."""
        o = self.current()
        for key, pos in self.model.items():
            _, m, is_long = key
            got = o[("liq", key)]
            p = o[("price", m, not is_long)]
            if isinstance(p, Reverted):
                assert got == p
                continue
            v = K.values(pos, is_long, p, o[("idx", m)], o[("cfg", m)], o[("risk", m)], self.w.scale)
            assert got == (v.remaining < v.maintenance), (key, got, v)

    @invariant()
    def inv_pause_consistent(self):
        o = self.current()
        assert o["perp_paused"] == o["conf_paused"] == o["paused"]


def _diff(a: dict, b: dict) -> dict:
    return {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}


# ---------------------------------------------------------------- strategies

PICK = st.integers(0, 2**16)
TRADER = st.integers(0, 2)
SIDE = st.booleans()
COLLATERAL = st.sampled_from([0, 5, 10, 100, 1_000, 1_000, 5_000, 20_000])  # dollars
LEVERAGE = st.sampled_from([0, 1, 2, 5, 10, 10, 20, 40, 49, 50, 51, 200, -1])  # -1: a dust size (< 1e6 wei)
DUST = st.integers(0, 10**18)  # wei of size and token units of collateral, for rounding
ACCEPT = st.sampled_from(["any", "any", "any", "exact", "worse"])
FRACTION = st.sampled_from([0, 0.1, 0.5, 0.999, "all but 1 wei", 1, 1, 1.5])
WITHDRAW = st.sampled_from([0, 0, 0, 1, 0.1, 0.5, 1.0, 1.01])  # of the collateral (1: one token unit)
# bps: mostly around the default jump bound (200), sometimes far beyond it
MOVE = st.one_of(st.integers(-250, 250), st.integers(-1_200, 1_200))
DT = st.sampled_from([1, 10, 120, 299, 300, 301, 600, 901, 3_600, 3_601, 86_400])


class TradingRules:
    """Open, increase, add and remove collateral, decrease, close; oracle pushes (within and
    beyond the bounds, zero, stale, by strangers); time passing."""

    def _market(self, i: int) -> int:
        return self.w.markets[i % len(self.w.markets)]

    @rule(pick=PICK, coll=COLLATERAL, lev=LEVERAGE, dust=DUST, accept=ACCEPT)
    def increase(self, pick, coll, lev, dust, accept):
        """Open (or grow, or add collateral to: lev 0) a position: a new key 3 times in 5."""
        pre = self.begin("increase")
        key = self.pick_key(pick, existing=2)
        _, m, is_long = key
        collateral = self.usd(coll) + (dust % self.w.unit if coll else 0)
        size = dust % 10**6 + 1 if lev == -1 else (max(coll, 100) * lev * WAD + dust) if lev else 0
        acceptable = MAX_UINT if is_long else 0
        p = pre[("price", m, is_long)]
        if accept != "any" and not isinstance(p, Reverted):
            acceptable = p if accept == "exact" else (p - 1 if is_long else p + 1)
        self._increase(pre, key, collateral, size, acceptable)

    def _increase(self, pre, key, collateral, size, acceptable):
        try:
            exp, reason = self.predict_increase(pre, key, collateral, size, acceptable), None
        except Refused as r:
            exp, reason = None, r.reason
        _, m, is_long = key
        evs = self.send(self.addr(key), self.w.perp, "increase_position", m, is_long, collateral, size, acceptable,
                        expect=reason)
        if evs is not None:
            (e,) = self.evs("PositionUpdate")
            self.apply_update(key, exp, e)

    @rule(pick=PICK, frac=FRACTION, withdraw=WITHDRAW, accept=ACCEPT)
    def decrease(self, pick, frac, withdraw, accept):
        """Decrease, close (frac 1), withdraw collateral (frac 0) of mostly open positions."""
        pre = self.begin("decrease")
        key = self.pick_key(pick)
        _, m, is_long = key
        pos = self.model.get(key)
        if pos is None:
            size = 1_000 * WAD if frac else 0
            collateral = self.usd(10) if withdraw else 0
        else:
            size = {0: 0, 1: pos.size_usd, 1.5: pos.size_usd + 1, "all but 1 wei": pos.size_usd - 1}.get(frac)
            if size is None:
                size = pos.size_usd * int(frac * 1000) // 1000
            collateral = 1 if withdraw == 1 else int(pos.collateral * withdraw)
        maximize = not is_long
        acceptable = 0 if is_long else MAX_UINT
        p = pre[("price", m, maximize)]
        if accept != "any" and not isinstance(p, Reverted):
            acceptable = p if accept == "exact" else (p + 1 if is_long else p - 1)
        reason, exp = None, None
        try:
            if collateral == 0 and size == 0:
                raise Refused("perp: nothing to do")
            if pos is None:
                raise Refused("perp: no position")
            if size > pos.size_usd:
                raise Refused("perp: size exceeds position")
            fresh = collateral != 0 and size != pos.size_usd
            price = self.price_of(pre, m, maximize) if fresh else self.exit_price(pre, m, maximize)
            if size != 0 and ((is_long and price < acceptable) or (not is_long and price > acceptable)):
                raise Refused("perp: price not acceptable")
            exp = self.predict_decrease(pre, key, collateral, size, price)
        except Refused as r:
            reason = r.reason
        evs = self.send(self.addr(key), self.w.perp, "decrease_position", m, is_long, collateral, size, acceptable,
                        self.addr(key), expect=reason)
        if evs is not None:
            (e,) = self.evs("PositionUpdate")
            self.apply_update(key, exp, e)

    @precondition(lambda self: len(self.model) < 8)
    @rule(pick=PICK, coll=st.sampled_from([100, 1_000, 5_000, 10_000]), lev=st.sampled_from([2, 5, 10, 20, 45]),
          dust=DUST)
    def open_position(self, pick, coll, lev, dust):
        """`increase` of a key with no position, at a leverage that usually passes."""
        free = [i for i, k in enumerate(self.w.keys) if k not in self.model]
        self.increase(free[pick % len(free)] * 5 + 4, coll, lev, dust, "any")

    @precondition(lambda self: self.model)
    @rule(pick=PICK, frac=FRACTION, withdraw=WITHDRAW, accept=ACCEPT)
    def reduce_open_position(self, pick, frac, withdraw, accept):
        """`decrease` of an open position (so programs that open few still close some)."""
        self.decrease(pick - pick % 5, frac, withdraw, accept)  # pick % 5 == 0: an open one

    # ------------------------------------------------------------ oracle and time

    def predict_push(self, obs, sender: str, markets: list, prices: list, observed: int) -> None:
        cfg = self.w.oracle_cfg
        now = self.rpc.now
        if sender != self.w.keeper:
            raise Refused("oracle: not updater")
        if observed > now + cfg.max_future_skew:
            raise Refused("oracle: future timestamp")
        if observed + cfg.max_price_age < now:
            raise Refused("oracle: stale timestamp")
        for m, price in zip(markets, prices):
            pd = obs[("pd", m)]
            if price == 0:
                raise Refused("oracle: zero price")
            if price > 2**96 - 1:
                raise Refused("oracle: price too large")
            if observed <= pd.observed_at:
                raise Refused("oracle: timestamp not newer")
            old = pd.price
            if old != 0 and pd.observed_at + cfg.max_price_age < now:
                continue  # after an outage: unbounded (no reference feed), spread on
            if abs(price - old) * BPS > cfg.max_jump_bps * old:
                raise Refused("oracle: price jump")
            ref, start = pd.window_ref_price, pd.window_start
            if observed >= start + cfg.window:
                ref = old
            if abs(price - ref) * BPS > cfg.max_window_move_bps * ref:
                raise Refused("oracle: window move")

    def _push(self, sender: str, markets: list, prices: list, observed: int) -> None:
        pre = self.step.pre
        try:
            self.predict_push(pre, sender, markets, prices, observed)
            reason = None
        except Refused as r:
            reason = r.reason
        if self.send(sender, self.w.oracle, "set_prices", markets, prices, observed, expect=reason) is not None:
            for m, p in zip(markets, prices):
                self.prices[m] = p
            assert [e["price"] for e in self.evs("PriceUpdate")] == prices

    @rule(mi=st.integers(0, 1), move=MOVE, when=st.sampled_from(["now"] * 6 + ["stale", "future", "same", "zero", "stranger"]))
    def push_price(self, mi, move, when):
        """One second passes, then a push: within the bounds or beyond them, zero, with a
        stale or future observation time, an observation no newer, or by a stranger."""
        self.begin("push")
        self.advance(1)
        m = self._market(mi)
        now = self.rpc.now
        price = mul_div(self.prices[m], BPS + move, BPS)
        observed = {"stale": now - self.w.oracle_cfg.max_price_age - 1, "future": now + self.w.oracle_cfg.max_future_skew + 1,
                    "same": self.step.pre[("pd", m)].observed_at}.get(when, now)
        sender = self.w.attacker if when == "stranger" else self.w.keeper
        self._push(sender, [m], [0 if when == "zero" else price], observed)

    @rule(dt=DT, fresh=st.sampled_from([True, True, True, False]), drift=st.integers(-150, 150))
    def time_passes(self, dt, fresh, drift):
        """dt seconds pass; usually the keeper then pushes both markets (the price drifted by
        `drift` bps), otherwise the prices go stale past max_price_age."""
        self.begin("time")
        self.advance(dt)
        if fresh:
            prices = [mul_div(self.prices[m], BPS + drift, BPS) for m in self.w.markets]
            self._push(self.w.keeper, list(self.w.markets), prices, self.rpc.now)


class LpRules:
    """Deposit, redeem, donate, fund the insurance fund."""

    def quote_deposit(self, state: dict, units: int, value, least: int = 0) -> tuple[int, int]:
        """Vault._deposit of `units` in `state` (an observation, or the state a batch's
        earlier fills left) at the max pool value `value`: (shares, mint fee), or Refused
        with the Vault's words."""
        w = self.w
        fee = bps_of(units, w.mint_fee_bps, True)
        net = (units - fee) * w.scale
        if isinstance(value, Reverted):
            raise Refused(value.reason)
        if value == 0:
            raise Refused("vault: pool value zero")
        supply = state["totalSupply"]
        shares = mul_div(net, supply, value)
        if shares == 0:
            raise Refused("vault: zero shares")
        if shares < least:
            raise Refused("vault: slippage")
        after = self.pool_value({**state, "pool_amount": state["pool_amount"] + units}, True)[0]
        if after * supply < value * (supply + shares):
            raise Refused("vault: deposit would dilute")
        return shares, fee

    def quote_redeem(self, state: dict, shares: int, value, least: int = 0) -> tuple[int, int]:
        """Vault._redeem of `shares` in `state` at the min pool value `value`: (token units
        paid, burn fee), or Refused with the Vault's words."""
        w = self.w
        if isinstance(value, Reverted):
            raise Refused(value.reason)
        supply = state["totalSupply"]
        gross = mul_div(shares, value, supply) // w.scale
        fee = bps_of(gross, w.burn_fee_bps, True)
        amount = gross - fee
        if amount == 0:
            raise Refused("vault: zero amount")
        if amount < least:
            raise Refused("vault: slippage")
        if amount > state["pool_amount"] or state["pool_amount"] - amount < state["reserved_amount"]:
            raise Refused("vault: reserved")
        after = self.pool_value({**state, "pool_amount": state["pool_amount"] - amount}, False)[0]
        if after * supply > value * (supply - shares) + supply * (fee + 1) * w.scale:
            raise Refused("vault: redeem beyond its share")
        return amount, fee

    @rule(who=st.integers(0, 1), amount=st.sampled_from([0, -1, -2, 1, 1_000, 100_000, 500_000]), dust=DUST)
    def deposit(self, who, amount, dust):
        pre = self.begin("deposit")
        w = self.w
        lp = w.lps[who]
        units = {-1: 1, -2: 2}.get(amount, self.usd(amount) + (dust % w.unit if amount > 0 else 0))
        reason, shares, fee = None, 0, 0
        try:
            if units == 0:
                raise Refused("vault: zero amount")
            if pre["paused"]:
                raise Refused("vault: paused")
            if pre["lp_orders_only"]:
                raise Refused("vault: LP orders only")
            shares, fee = self.quote_deposit(pre, units, pre[("pv", True)])
        except Refused as r:
            reason = r.reason
        self.step.lp_action = "deposit"
        self.step.amount, self.step.fee = units, fee
        if self.send(lp, w.vault, "deposit", units, 0, lp, expect=reason) is not None:
            (e,) = self.evs("Deposit")
            assert (e["amount"], e["fee"], e["shares"]) == (units, fee, shares)
            self.expect_deltas(pool_amount=units, totalSupply=shares)
            self.expect_delta(("shares", lp), shares)

    @rule(who=st.integers(0, 1), frac=st.sampled_from([0, -1, 0.1, 0.5, 1, 1.01]))
    def redeem(self, who, frac):
        pre = self.begin("redeem")
        w = self.w
        lp = w.lps[who]
        balance = pre[("shares", lp)]
        shares = 1 if frac == -1 else (balance + 1 if frac == 1.01 else int(balance * frac))
        reason, amount, fee = None, 0, 0
        try:
            if shares == 0:
                raise Refused("vault: zero shares")
            if pre["lp_orders_only"]:
                raise Refused("vault: LP orders only")
            if self.rpc.now < pre[("last_deposit", lp)] + w.cooldown:
                raise Refused("vault: cooldown")
            if shares > balance:
                raise Refused("vault: insufficient shares")
            amount, fee = self.quote_redeem(pre, shares, pre[("pv", False)])
        except Refused as r:
            reason = r.reason
        self.step.lp_action = "redeem"
        self.step.amount, self.step.fee = amount, fee
        if self.send(lp, w.vault, "redeem", shares, 0, lp, expect=reason) is not None:
            (e,) = self.evs("Redeem")
            assert (e["shares"], e["amount"], e["fee"]) == (shares, amount, fee)
            self.expect_deltas(pool_amount=-amount, totalSupply=-shares)
            self.expect_delta(("shares", lp), -shares)

    @rule(amount=st.sampled_from([1, 1_000, 250_000]), insurance=st.booleans())
    def donate(self, amount, insurance):
        """A plain token transfer to the Vault (counted by nobody), or `fund_insurance`."""
        self.begin("donate")
        w = self.w
        units = amount * w.unit if amount > 1 else 1
        if insurance:
            self.step.lp_action = "fund_insurance"
            if self.send(w.attacker, w.vault, "fund_insurance", units) is not None:
                self.expect_deltas(insurance_amount=units)
        else:
            self.step.lp_action = "donate"
            if self.send(w.attacker, w.token, "transfer", w.vault.address, units) is not None:
                self.donated += units


# LP orders: the least accepted (none, the quote at the value now: the fill's own price
# decides, never met, beyond the order book's bound) and the fee (in minimum fees; -1: one
# token unit below the minimum)
# (hypothesis favours the first of each list: the usual case goes first)
MIN_OUT = st.sampled_from(["none", "quote", "none", "quote", "huge", "too large"])
ORDER_FEE = st.sampled_from([0, 1, 0, -1])


class LpOrderRules:
    """LP deposit and redeem orders through the OrderBook: placed (tokens or shares
    escrowed, every refusal predicted), executed by the keeper or a stranger (each order
    left pending, expired, refused by the Vault with its code, or filled at the Vault's
    formula on the state the batch's earlier fills left), cancelled by the owner or anyone,
    and the LPs' credits claimed. A fill needs a fresh price observed after the order in
    every market."""

    def _value(self, state: dict, maximize: bool):
        v = self.pool_value(state, maximize)
        return v if isinstance(v, Reverted) else v[0]

    def _lp_fee(self, extra: int) -> int:
        return self.w.min_fee * (1 + extra) if extra >= 0 else self.w.min_fee - 1

    @rule(who=st.integers(0, 1), amount=st.sampled_from([100_000, 1_000, -1, 500_000, 0]), dust=DUST, least=MIN_OUT,
          extra=ORDER_FEE)
    def create_deposit_order(self, who, amount, dust, least, extra):
        pre = self.begin("deposit_order")
        w = self.w
        lp = w.lps[who]
        units = 1 if amount == -1 else self.usd(amount) + (dust % w.unit if amount > 0 else 0)
        fee = self._lp_fee(extra)
        quote = 0
        if least == "quote" and units:
            try:
                quote = self.quote_deposit(pre, units, pre[("pv", True)])[0]
            except Refused:
                pass
        min_out = {"none": 0, "quote": quote, "huge": 2**95, "too large": 2**96}[least]
        reason = ("orders: zero amount" if units == 0 else "orders: min out too large" if min_out > 2**96 - 1
                  else "orders: fee below min" if fee < w.min_fee else "orders: deposits paused" if pre["paused"]
                  else None)
        self.step.lp_action = "order_placed"
        if self.send(lp, w.orders, "create_deposit_order", units, min_out, fee, expect=reason) is not None:
            self._placed(pre, lp, LP_DEPOSIT, units, 0, min_out, fee)
            self.expect_deltas(escrow_amount=units + fee)

    @rule(who=st.sampled_from([0, 0, 0, 1]), frac=st.sampled_from([0.5, 0.1, 1, -1, 1.01, 0]), least=MIN_OUT,
          extra=ORDER_FEE)
    def create_redeem_order(self, who, frac, least, extra):
        pre = self.begin("redeem_order")
        w = self.w
        lp = w.lps[who]
        balance = pre[("shares", lp)]
        shares = 1 if frac == -1 else (balance + 1 if frac == 1.01 else int(balance * frac))
        fee = self._lp_fee(extra)
        quote = 0
        if least == "quote" and shares:
            try:
                quote = self.quote_redeem(pre, shares, pre[("pv", False)])[0]
            except Refused:
                pass
        min_out = {"none": 0, "quote": quote, "huge": 2**95, "too large": 2**96}[least]
        reason = ("orders: zero shares" if shares == 0 else "orders: min out too large" if min_out > 2**96 - 1
                  else "orders: fee below min" if fee < w.min_fee
                  else "vault: cooldown" if self.rpc.now < pre[("last_deposit", lp)] + w.cooldown
                  else "vault: insufficient shares" if shares > balance else None)
        self.step.lp_action = "order_placed"
        if self.send(lp, w.orders, "create_redeem_order", shares, min_out, fee, expect=reason) is not None:
            self._placed(pre, lp, LP_REDEEM, 0, shares, min_out, fee)
            self.expect_deltas(escrow_amount=fee)
            self.expect_delta(("shares", lp), -shares)
            self.expect_delta(("shares", w.orders.address), shares)

    def _placed(self, pre: dict, owner: str, kind: int, amount: int, shares: int, min_out: int, fee: int) -> None:
        """The OrderCreated log is the order as asked, its floor the newest of the block time
        and every market's observation; the model follows it."""
        (e,) = self.evs("OrderCreated")
        oid, now = pre["next_order_id"], self.rpc.now
        floor = max([now] + [pre[("pd", m)].observed_at for m in self.w.markets])
        got = tuple(e[k] for k in ("order_id", "owner", "market", "kind", "collateral_delta", "size_delta",
                                   "acceptable_price", "trigger_price", "execution_fee", "placed_at", "price_floor"))
        assert got == (oid, owner, 0, kind, amount, shares, min_out, 0, fee, now, floor), got
        self.lp_orders[oid] = LpOrder(owner, kind, amount, shares, min_out, fee, now, floor)
        self.stats[f"lp order placed:{kind}"] += 1

    def _lp_precheck(self, pre: dict, o: LpOrder, is_keeper: bool) -> str:
        """OrderBook._precheck of an LP order now: "expired", "pending" or "fill"."""
        now, w = self.rpc.now, self.w
        if now >= o.placed_at + w.expiry:
            return "expired"
        if not is_keeper and now < o.placed_at + w.timeout:
            return "pending"
        if o.kind == LP_DEPOSIT and pre["paused"]:
            return "pending"
        for m in w.markets:
            if self.stale(pre, m) or pre[("pd", m)].observed_at <= o.floor:
                return "pending"
        return "fill"

    @rule(which=st.sampled_from(["all", "one", "all", "none", "all"]), pick=PICK,
          stranger=st.sampled_from([False] * 4 + [True]))
    def execute_lp_orders(self, which, pick, stranger):
        """A batch of LP orders (all live ones, one, or an id that is not an order), by the
        keeper or a stranger (fees to the sender): each decided exactly as predicted."""
        pre = self.begin("execute_orders")
        w = self.w
        ids = sorted(self.lp_orders)
        if which == "one" and ids:
            ids = [ids[pick % len(ids)]]
        elif which == "none" or not ids:
            ids = [pre["next_order_id"]]  # no such order: left pending
        sender = w.attacker if stranger else w.keeper
        state = dict(pre)
        plan = []  # (id, outcome, vault refusal words or None, amount or shares out, the Vault's fee)
        for oid in ids:
            o = self.lp_orders.get(oid)
            decision = "pending" if o is None else self._lp_precheck(pre, o, not stranger)
            if decision == "pending":
                continue
            if decision == "expired":
                plan.append((oid, "expired", None, 0, 0))
                continue
            try:
                if o.kind == LP_DEPOSIT:
                    out, vfee = self.quote_deposit(state, o.amount, self._value(state, True), o.min_out)
                    state = {**state, "pool_amount": state["pool_amount"] + o.amount,
                             "totalSupply": state["totalSupply"] + out}
                else:
                    out, vfee = self.quote_redeem(state, o.shares, self._value(state, False), o.min_out)
                    state = {**state, "pool_amount": state["pool_amount"] - out,
                             "totalSupply": state["totalSupply"] - o.shares}
                plan.append((oid, "filled", None, out, vfee))
            except Refused as r:
                assert r.reason in VAULT_CODES, r.reason
                plan.append((oid, "refused", r.reason, 0, 0))
        self.step.lp_action = "orders"
        self.send(sender, w.orders, "execute_orders", ids, sender)
        done = {e["order_id"]: e for e in self.evs("OrderExecuted")}
        gone = {e["order_id"]: e for e in self.evs("OrderCancelled")}
        deposits, redeems = self.evs("Deposit"), self.evs("Redeem")
        assert set(done) | set(gone) == {p[0] for p in plan}, (plan, sorted(done), sorted(gone))
        cooling = []
        for oid, outcome, words, out, vfee in plan:
            o = self.lp_orders.pop(oid)
            self.stats[f"lp order {outcome}:{o.kind}" + (f":{words}" if words else "")] += 1
            self.expect_deltas(escrow_amount=-o.escrow())
            if o.kind == LP_REDEEM and outcome != "filled":  # the shares go back
                self.expect_delta(("shares", w.orders.address), -o.shares)
                self.expect_delta(("shares", o.owner), o.shares)
            if outcome == "expired":
                c = gone[oid]
                assert (c["reason_code"], c["refund"], c["fee_paid"], c["shares_refund"]) == (
                    EXPIRED, o.escrow(), 0, o.shares)
                self.expect_deltas(claimable_amount=o.escrow())
                self.expect_delta(("claimable", o.owner), o.escrow())
                continue
            # refused or filled: the fee is the sender's
            self.expect_deltas(claimable_amount=o.fee)
            self.expect_delta(("claimable", sender), o.fee)
            if outcome == "refused":
                c = gone[oid]
                refund = o.amount if o.kind == LP_DEPOSIT else 0
                got = tuple(c[k] for k in ("reason_code", "reason", "refund", "fee_receiver", "fee_paid", "shares_refund"))
                assert got == (VAULT_CODES[words], words, refund, sender, o.fee, o.shares), got
                self.expect_deltas(claimable_amount=refund)
                self.expect_delta(("claimable", o.owner), refund)
                continue
            # filled: only with a fresh price observed after the order in every market
            for m in w.markets:
                assert not self.stale(pre, m) and pre[("pd", m)].observed_at > o.floor, f"LP order {oid} filled early"
            e = done[oid]
            assert (e["owner"], e["market"], e["price"], e["execution_fee"], e["fee_receiver"]) == (
                o.owner, 0, 0, o.fee, sender)
            if o.kind == LP_DEPOSIT:
                d = deposits.pop(0)
                assert (d["sender"], d["receiver"], d["amount"], d["fee"], d["shares"], e["amount_credited"]) == (
                    o.owner, o.owner, o.amount, vfee, out, 0)
                self.expect_deltas(pool_amount=o.amount, totalSupply=out)
                self.expect_delta(("shares", o.owner), out)
                self.step.lp_fills.append(("deposit", o.amount, vfee, out))
                cooling.append(o.owner)
            else:
                r = redeems.pop(0)
                assert (r["sender"], r["receiver"], r["shares"], r["amount"], r["fee"], e["amount_credited"]) == (
                    o.owner, o.owner, o.shares, out, vfee, out)
                self.expect_deltas(pool_amount=-out, totalSupply=-o.shares, claimable_amount=out)
                self.expect_delta(("shares", w.orders.address), -o.shares)
                self.expect_delta(("claimable", o.owner), out)
                self.step.lp_fills.append(("redeem", out, vfee, o.shares))
        assert deposits == [] and redeems == [], "a Vault fill no LP order predicted"
        post = self.current()
        for owner in cooling:  # a filled deposit starts its owner's cooldown
            assert post[("last_deposit", owner)] == self.rpc.now
        for owner in set(w.lps) - set(cooling):
            assert post[("last_deposit", owner)] == pre[("last_deposit", owner)]
        if plan:  # decided orders are gone
            gone_orders = self.rpc.batch([(w.orders, "get_order", p[0]) for p in plan])
            assert all(g.owner == "0x" + "0" * 40 for g in gone_orders)

    @precondition(lambda self: self.lp_orders)
    @rule(pick=PICK, stranger=st.sampled_from([False, False, True]))
    def cancel_lp_order(self, pick, stranger):
        """The owner from the timeout on (everything transferred back), anyone once it
        expired (everything credited back); before that refused."""
        pre = self.begin("cancel_order")
        w = self.w
        oid = sorted(self.lp_orders)[pick % len(self.lp_orders)]
        o = self.lp_orders[oid]
        now = self.rpc.now
        sender = w.attacker if stranger else o.owner
        if stranger:
            reason = "orders: not owner" if now < o.placed_at + w.expiry else None
        else:
            reason = "orders: too early to cancel" if now < o.placed_at + w.timeout else None
        self.step.lp_action = "order_cancelled"
        if self.send(sender, w.orders, "cancel_order", oid, expect=reason) is None:
            return
        (c,) = self.evs("OrderCancelled")
        assert (c["order_id"], c["reason_code"], c["refund"], c["fee_paid"], c["shares_refund"], c["canceller"]) == (
            oid, EXPIRED if stranger else BY_OWNER, o.escrow(), 0, o.shares, sender)
        self.lp_orders.pop(oid)
        self.expect_deltas(escrow_amount=-o.escrow())
        if o.shares:
            self.expect_delta(("shares", w.orders.address), -o.shares)
            self.expect_delta(("shares", o.owner), o.shares)
        if stranger:  # credited
            self.expect_deltas(claimable_amount=o.escrow())
            self.expect_delta(("claimable", o.owner), o.escrow())
        else:  # transferred
            assert self.current()[("bal", o.owner)] == pre[("bal", o.owner)] + o.escrow()
        self.stats[f"lp order cancelled:{'expired' if stranger else 'owner'}"] += 1

    @rule(enabled=st.booleans(), stranger=st.sampled_from([False] * 4 + [True]))
    def set_lp_orders_only(self, enabled, stranger):
        """The admin turns the direct LP flows off (on); a stranger is refused. Direct
        deposits and redeems are then refused ("vault: LP orders only"), orders go on."""
        self.begin("lp_orders_only")
        w = self.w
        if self.send(w.attacker if stranger else w.admin, w.vault, "set_lp_orders_only", enabled,
                     expect="vault: not admin" if stranger else None) is not None:
            assert self.current()["lp_orders_only"] == enabled
            self.stats[f"lp orders only:{enabled}"] += 1

    @precondition(lambda self: any(self.current()[("claimable", a)] for a in self.w.lps))
    @rule(who=st.integers(0, 1))
    def claim_lp(self, who):
        """An LP claims its credits (redeem payouts, refunds)."""
        pre = self.begin("claim")
        w = self.w
        lp = w.lps[who]
        owed = pre[("claimable", lp)]
        self.step.lp_action = "claim"
        if self.send(lp, w.vault, "claim", lp, expect=None if owed else "vault: nothing to claim") is not None:
            self.expect_deltas(claimable_amount=-owed)
            self.expect_delta(("claimable", lp), -owed)
            assert self.current()[("bal", lp)] == pre[("bal", lp)] + owed

    @rule(deposit=st.booleans(), size=st.sampled_from([100_000, 1_000, -1, 100_000]),
          least=st.sampled_from(["none", "none", "quote", "huge"]),
          path=st.sampled_from(["fill", "fill", "one market first", "stranger fills", "owner cancels", "expires",
                                "expired cancel"]),
          drift=st.integers(-150, 150))
    def lp_order_campaign(self, deposit, size, least, path, drift):
        """Several steps: an LP order (a redeem after its LP's cooldown, let pass with fresh
        prices), then one of: every market pushed a second later and a batch (it is decided);
        first one market only and a batch (it must wait); past the timeout a stranger's
        batch; past the timeout the owner's cancel (prices left to go stale); past the expiry
        a batch (expired: everything back) or a stranger's cancel."""
        w = self.w
        if deposit:
            self.create_deposit_order(1, size, 0, least, 0)
        else:
            lp = w.lps[0]
            if self.rpc.now < self.current()[("last_deposit", lp)] + w.cooldown:
                self.time_passes(w.cooldown + 1, True, 0)
                self.run_invariants()
            self.create_redeem_order(0, {-1: -1, 1_000: 0.1, 100_000: 0.5}[size], least, 0)
        if self.step.refused is not None:
            return
        oid = max(self.lp_orders)
        self.run_invariants()
        if path == "one market first":
            self.push_price(0, drift // 2, "now")
            self.run_invariants()
            self.execute_lp_orders("all", 0, False)
            assert oid in self.lp_orders, "an LP order filled with one market's newer price"
            self.run_invariants()
        wait = {"stranger fills": w.timeout, "owner cancels": w.timeout, "expires": w.expiry,
                "expired cancel": w.expiry}.get(path, 1)
        self.time_passes(wait, path not in ("owner cancels", "expired cancel"), drift)
        self.run_invariants()
        if oid not in self.lp_orders:
            return
        index = sorted(self.lp_orders).index(oid)
        if path in ("owner cancels", "expired cancel"):
            self.cancel_lp_order(index, path == "expired cancel")
        else:
            self.execute_lp_orders("one" if path == "stranger fills" else "all", index, path == "stranger fills")


class RiskRules:
    """Liquidation (single and batch) of any position, ADL of any position, bounded config
    changes (valid and refused), the pnl cap, pause, claims."""

    def _key(self, i: int) -> tuple:
        return self.w.keys[i % len(self.w.keys)]

    @rule(pick=PICK, receiver=st.sampled_from([0, 0, 0, 1, 2]))
    def liquidate(self, pick, receiver):
        """Success iff the health function said liquidatable just before."""
        pre = self.begin("liquidate")
        w = self.w
        key = self.pick_key(pick)
        _, m, is_long = key
        to = ("0x" + "0" * 40) if receiver == 2 else w.liquidators[receiver]
        before = pre.get(("liq", key), False)
        reason, exp = None, None
        try:
            if receiver == 2:
                raise Refused("perp: zero receiver")
            exp = self.predict_liquidation(pre, key, pre["insurance_amount"])
        except Refused as r:
            reason = r.reason
        evs = self.send(w.attacker, w.perp, "liquidate", self.addr(key), m, is_long, to, expect=reason)
        self.step.liquidation = (before, evs is not None)
        if receiver != 2 and key in self.model:
            assert (evs is not None) == (before is True), f"liquidatable={before} but liquidated={evs is not None}"
        if evs is not None:
            self._apply_liquidation(key, exp, to)

    def _apply_liquidation(self, key, exp: Expect, to: str) -> None:
        _, m, is_long = key
        (e,) = [x for x in self.evs("Liquidation") if (x["account"], x["market"], x["is_long"]) == (self.addr(key), m, is_long)]
        v = exp.extra["values"]
        assert (e["price"], e["fee"], e["fee_from_insurance"], e["insurance_cut"], e["remaining"], e["maintenance"]) == (
            exp.price, exp.extra["fee"], exp.extra["from_insurance"], exp.extra["cut"], v.remaining, v.maintenance)
        assert e["fee_receiver"] == to and e["size_usd"] == self.model[key].size_usd
        self.model.pop(key)
        self.stats["liquidations"] += 1
        if exp.bad_debt:
            self.stats["liquidations with bad debt"] += 1
        self.funding_realised += exp.funding
        self.step.prices_used.append((m, is_long, exp.price, -1))
        self.expect_deltas(pool_amount=exp.pool_delta, collateral_amount=exp.collateral_delta,
                           insurance_amount=exp.insurance_delta, bad_debt_total=exp.bad_debt_lps,
                           claimable_amount=exp.extra["fee"])

    @rule(mask=st.integers(1, 2**12 - 1))
    def liquidate_batch(self, mask):
        """A batch over any positions: exactly the liquidatable ones go, in order."""
        pre = self.begin("liquidate_batch")
        w = self.w
        chosen = [k for j, k in enumerate(w.keys) if mask >> j & 1]
        insurance = pre["insurance_amount"]
        expected, reason = [], None
        try:
            for key in chosen:
                if key not in self.model:
                    continue
                try:
                    exp = self.predict_liquidation(pre, key, insurance)
                except Refused as r:
                    if r.reason == "perp: position healthy":
                        continue
                    raise
                insurance += exp.insurance_delta
                expected.append((key, exp))
        except Refused as r:
            reason = r.reason
        refs = [(w.traders[t], m, side) for t, m, side in chosen]
        evs = self.send(w.attacker, w.perp, "liquidate_batch", refs, w.liquidators[0], expect=reason)
        if evs is not None:
            assert len(self.evs("Liquidation")) == len(expected)
            for key, exp in expected:
                self._apply_liquidation(key, exp, w.liquidators[0])

    @rule(pick=PICK, size=st.sampled_from(["zero", "one wei", "30%", "all", "twice", "limit", "limit"]),
          stranger=st.sampled_from([False] * 7 + [True]))
    def auto_deleverage(self, pick, size, stranger):
        """ADL of any position: refused unless the side is triggered and the position in
        profit; never closes more than asked or than the clamp, never takes the factor
        below the target. `stranger`: calling Perp.adl_decrease directly is refused."""
        pre = self.begin("adl")
        w = self.w
        key = self.pick_key(pick)
        _, m, is_long = key
        pos = self.model.get(key)
        if stranger:
            self.send(w.attacker, w.perp, "adl_decrease", self.addr(key), m, is_long, 1, expect="perp: not deleverager")
            return
        limit = self.rpc.call(w.risk, "adl_size_limit", self.addr(key), m, is_long) if pos and not self.stale(pre, m) else 0
        if size == "limit":
            size_delta = max(limit, 1)
        elif size in ("zero", "one wei"):
            size_delta = 0 if size == "zero" else 1
        else:
            size_delta = (pos.size_usd if pos else 1_000 * WAD) * {"30%": 3, "all": 10, "twice": 20}[size] // 10
        reason, exp = None, None
        triggered = False
        try:
            if size_delta == 0:
                raise Refused("risk: zero size")
            if pos is None:
                raise Refused("risk: no position")
            price = self.price_of(pre, m, not is_long)
            usd, tokens = pre[("oi", m, is_long)]
            side_pnl = pnl_usd(usd, tokens, price, is_long)
            pool_usd = pre["pool_amount"] * w.scale
            r = pre[("risk", m)]
            triggered = side_pnl > 0 and side_pnl * BPS > r.max_pnl_factor_for_adl_bps * pool_usd
            if not triggered:
                raise Refused("risk: adl not triggered")
            self.stats["adl triggered"] += 1
            v = K.values(pos, is_long, price, pre[("idx", m)], pre[("cfg", m)], r, w.scale)
            if v.pnl <= 0:
                raise Refused("risk: position not profitable")
            assert limit <= pos.size_usd
            closed = min(size_delta, pos.size_usd, limit)
            if closed == 0:
                raise Refused("risk: adl target reached")
            exp = self.predict_decrease(pre, key, 0, closed, price, checked=False)
            # the RiskEngine's re-check, on the state the close leaves
            after_usd, after_tokens = usd - closed, tokens - exp.extra["tokens_closed"]
            after_pnl = pnl_usd(after_usd, after_tokens, price, is_long)
            after_pool = (pre["pool_amount"] + exp.pool_delta) * w.scale
            # the clamp must make the RiskEngine's own re-check ("risk: adl overshoot", "never
            # expected") unnecessary: an overshooting clamp would block ADL where it is due
            assert max(after_pnl, 0) * BPS >= r.min_pnl_factor_after_adl_bps * after_pool, (
                f"the ADL clamp ({closed}) would take the factor below the target")
        except Refused as r:
            reason = r.reason
        evs = self.send(w.attacker, w.risk, "auto_deleverage", self.addr(key), m, is_long, size_delta, expect=reason)
        if evs is None:
            return
        assert triggered, "ADL ran on a side that was not triggered"
        (e,) = self.evs("PositionUpdate")
        self.apply_update(key, exp, e)
        (a,) = self.evs("AutoDeleverage")
        assert a["size_delta"] == -exp.size_delta <= size_delta and a["size_requested"] == size_delta
        assert a["amount_out"] == exp.amount_out
        # never overshooting: the side's factor after the close is at or above the target
        o = self.rpc.batch([(w.perp, "open_interest", m, is_long), (w.vault, "pool_amount")])
        after_pnl = pnl_usd(o[0][0], o[0][1], exp.price, is_long)
        r = pre[("risk", m)]
        assert max(after_pnl, 0) * BPS >= r.min_pnl_factor_after_adl_bps * o[1] * w.scale, "ADL overshot its target"
        self.stats["adl closes"] += 1

    @rule(mi=st.integers(0, 1), move=st.sampled_from([-950, -600, -300, -150, 150, 300, 600, 950]))
    def big_move(self, mi, move):
        """A large move (so positions go unhealthy, or a side's profit triggers ADL), stepped
        as the price keeper steps it: one push a second, each within the jump bound, the
        invariants checked between them; beyond the window bound a push is refused."""
        m = self._market(mi)
        target = mul_div(self.prices[m], BPS + move, BPS)
        jump = self.w.oracle_cfg.max_jump_bps
        first = True
        while True:
            if not first:
                self.run_invariants()
            first = False
            self.begin("push")
            self.advance(1)
            old = self.prices[m]
            step = min(target, mul_div(old, BPS + jump, BPS)) if target > old else max(target, K.ceil_div(old * (BPS - jump), BPS))
            self._push(self.w.keeper, [m], [step], self.rpc.now)
            if self.step.refused is not None or step == target:
                return

    # ------------------------------------------------------------ campaigns (several steps)

    def _open_index(self, key) -> int:
        """The `pick` that selects open position `key` (pick % 5 == 0)."""
        return sorted(self.model).index(key) * 5

    @precondition(lambda self: self.model)
    @rule(pick=PICK, trigger=st.sampled_from([(30, 10), (100, 50), (300, 100)]),
          move=st.sampled_from([300, 600, 950]), size=st.sampled_from(["all", "limit", "30%"]),
          traders=st.sampled_from([9_000, 9_000, 200, 50]))
    def adl_campaign(self, pick, trigger, move, size, traders):
        """Three steps: a low ADL trigger (and maybe a low traders' profit cap) on the market
        of an open position, a price move in its favour, then ADL of it (the invariants run
        after each)."""
        key = sorted(self.model)[pick % len(self.model)]
        _, m, is_long = key
        mi = self.w.markets.index(m)
        self.set_risk_config(mi, trigger, 1_000, traders, "default", False)
        self.run_invariants()
        self.big_move(mi, move if is_long else -move)
        self.run_invariants()
        if key in self.model:
            self.auto_deleverage(self._open_index(key), size, False)

    @precondition(lambda self: self.model)
    @rule(pick=PICK, move=st.sampled_from([150, 300, 600, 950]), batch=st.booleans())
    def liquidation_campaign(self, pick, move, batch):
        """Two steps: a price move against an open position, then its liquidation (alone or
        in a batch of every position)."""
        key = sorted(self.model)[pick % len(self.model)]
        _, m, is_long = key
        self.big_move(self.w.markets.index(m), -move if is_long else move)
        self.run_invariants()
        if batch:
            self.liquidate_batch(2**12 - 1)
        elif key in self.model:
            self.liquidate(self._open_index(key), 0)

    # ------------------------------------------------------------ config, pause, claims

    def predict_config(self, sender: str, c: Any, r: Any) -> None:
        if sender != self.w.admin:
            raise Refused("config: not admin")
        if not (10_000 <= c.max_leverage_bps <= 1_000_000):
            raise Refused("config: bad max leverage")
        if c.max_leverage_bps * self.w.oracle_cfg.max_jump_bps > BPS * BPS:
            raise Refused("config: leverage above oracle jump")
        if c.position_fee_bps > 100:
            raise Refused("config: bad position fee")
        if not (WAD <= c.min_collateral_usd <= 10_000 * WAD) or c.min_collateral_usd % 10**12:
            raise Refused("config: bad min collateral")
        if c.max_open_interest_usd >= 2**112:
            raise Refused("config: bad max open interest")
        if not (1_000 <= c.reserve_factor_bps <= 20_000):
            raise Refused("config: bad reserve factor")
        limit = 10**18 // 3_600 // 100
        if c.borrowing_factor > limit:
            raise Refused("config: bad borrowing factor")
        if c.funding_factor > limit:
            raise Refused("config: bad funding factor")
        if c.max_funding_rate > limit:
            raise Refused("config: bad max funding rate")
        if not (10 <= c.maintenance_margin_bps <= 5_000) or c.maintenance_margin_bps * c.max_leverage_bps >= BPS * BPS:
            raise Refused("config: bad maintenance margin")
        if not (c.min_maintenance_usd < c.min_collateral_usd and c.min_maintenance_usd % 10**12 == 0):
            raise Refused("config: bad min maintenance")
        prev_t, prev_b, ended = 0, c.maintenance_margin_bps, False
        for threshold, bps in zip(r.tier_threshold_usd, r.tier_maintenance_bps):
            if threshold == 0:
                if bps != 0:
                    raise Refused("config: bad tier")
                ended = True
                continue
            if ended or threshold <= prev_t or threshold % 10**12 or not (prev_b < bps <= 5_000):
                raise Refused("config: bad tier")
            prev_t, prev_b = threshold, bps
        if r.liquidation_fee_usd > 100 * WAD or r.liquidation_fee_usd % 10**12 or r.liquidation_fee_bps > 100:
            raise Refused("config: bad liquidation fee")
        if r.liquidation_fee_bps * 2 > c.maintenance_margin_bps or r.liquidation_fee_usd * 2 > c.min_maintenance_usd:
            raise Refused("config: liquidation fee above half the maintenance")
        if r.insurance_cut_bps > 5_000:
            raise Refused("config: bad insurance cut")
        if r.max_pnl_factor_for_traders_bps == 0 or r.max_pnl_factor_for_traders_bps > 10_000 or r.max_pnl_factor_for_adl_bps > 10_000:
            raise Refused("config: bad pnl factor")
        if r.min_pnl_factor_after_adl_bps >= r.max_pnl_factor_for_adl_bps:
            raise Refused("config: bad pnl factor")

    def _configure(self, fn: str, m: int, c: Any, r: Any, sender: str) -> None:
        pre = self.step.pre
        w = self.w
        reason = None
        try:
            self.predict_config(sender, c, r)
            total = pre[("oi", m, True)][0] + pre[("oi", m, False)][0]
            old = pre[("cfg", m)].reserve_factor_bps
            delta = K.reserve_tokens(total, c.reserve_factor_bps, w.scale) - K.reserve_tokens(total, old, w.scale)
            if delta > 0 and pre["reserved_amount"] + delta > pre["pool_amount"]:
                raise Refused("perp: reserve exceeded")
        except Refused as e:
            reason = e.reason
        arg = tuple(c) if fn == "set_market_config" else tuple(r)
        if self.send(sender, w.conf, fn, m, arg, expect=reason) is not None:
            self.stats[f"config:{fn}"] += 1

    @rule(mi=st.integers(0, 1), field_=st.sampled_from([
        "max_leverage_bps", "position_fee_bps", "reserve_factor_bps", "borrowing_factor", "funding_factor",
        "maintenance_margin_bps", "min_collateral_usd", "max_open_interest_usd"]), choice=st.integers(0, 5),
        stranger=st.sampled_from([False] * 7 + [True]))
    def set_market_config(self, mi, field_, choice, stranger):
        """One market setting changed to a value inside or just outside its bound."""
        pre = self.begin("config")
        m = self.w.markets[mi]
        top = 10**18 // 3_600 // 100
        values = {
            "max_leverage_bps": [9_999, 10_000, 100_000, 500_000, 500_001, 1_000_000, 1_000_001],
            "position_fee_bps": [0, 1, 10, 50, 100, 101],
            "reserve_factor_bps": [999, 1_000, 5_000, 10_000, 20_000, 20_001],
            "borrowing_factor": [0, top // 100, top // 10, top, top, top + 1],
            "funding_factor": [0, top // 100, top // 10, top, top, top + 1],
            "maintenance_margin_bps": [9, 10, 50, 100, 190, 5_001],
            "min_collateral_usd": [WAD - 1, WAD * 6, 10 * WAD, 100 * WAD, 10_000 * WAD, 10_001 * WAD],
            "max_open_interest_usd": [0, 100_000 * WAD, 1_000_000 * WAD, 50_000_000 * WAD, 2**112 - 1, 2**112],
        }[field_]
        c = pre[("cfg", m)]
        c = c._replace(**{field_: values[choice]})
        self._configure("set_market_config", m, c, pre[("risk", m)], self.w.attacker if stranger else self.w.admin)

    @rule(mi=st.integers(0, 1), adl=st.sampled_from([(7_000, 5_000), (1_000, 500), (300, 100), (100, 0), (50, 50)]),
          cut=st.sampled_from([0, 1_000, 5_000, 5_001]), traders=st.sampled_from([9_000, 2_000, 500, 100, 50, 0]),
          tiers=st.sampled_from(["default", "none", "low", "bad"]), stranger=st.sampled_from([False] * 7 + [True]))
    def set_risk_config(self, mi, adl, cut, traders, tiers, stranger):
        pre = self.begin("config")
        m = self.w.markets[mi]
        r = pre[("risk", m)]
        thresholds, rates = {
            "default": ([1_000_000 * WAD, 5_000_000 * WAD, 20_000_000 * WAD], [100, 150, 250]),
            "none": ([0, 0, 0], [0, 0, 0]),
            "low": ([20_000 * WAD, 200_000 * WAD, 0], [200, 300, 0]),
            "bad": ([0, 1_000 * WAD, 0], [0, 200, 0]),
        }[tiers]
        r = r._replace(tier_threshold_usd=thresholds, tier_maintenance_bps=rates, insurance_cut_bps=cut,
                       max_pnl_factor_for_traders_bps=traders, max_pnl_factor_for_adl_bps=adl[0],
                       min_pnl_factor_after_adl_bps=adl[1])
        self._configure("set_risk_config", m, pre[("cfg", m)], r, self.w.attacker if stranger else self.w.admin)

    @rule(value=st.sampled_from([0, 100, 500, 3_000, 9_000, 10_000, 10_001]), stranger=st.sampled_from([False] * 5 + [True]))
    def set_max_pnl_factor(self, value, stranger):
        self.begin("config")
        w = self.w
        reason = ("config: not admin" if stranger else
                  "config: bad max pnl factor" if value == 0 or value > 10_000 else None)
        self.send(w.attacker if stranger else w.admin, w.conf, "set_max_pnl_factor", value, expect=reason)

    @rule(paused=st.booleans(), stranger=st.sampled_from([False] * 3 + [True]))
    def pause(self, paused, stranger):
        self.begin("pause")
        w = self.w
        reason = None
        if stranger:
            reason = "config: not pauser" if paused else "config: not admin"
        self.send(w.attacker if stranger else w.admin, w.conf, "set_paused", paused, expect=reason)

    @rule(who=st.integers(0, 1))
    def claim(self, who):
        pre = self.begin("claim")
        w = self.w
        account = w.liquidators[who]
        owed = pre[("claimable", account)]
        self.step.lp_action = "claim"
        if self.send(account, w.vault, "claim", account, expect=None if owed else "vault: nothing to claim") is not None:
            self.expect_deltas(claimable_amount=-owed)

    @initialize(opens=st.lists(st.tuples(st.integers(0, 11), st.sampled_from([1_000, 2_000, 5_000, 10_000]),
                                         st.sampled_from([10, 20, 45])), min_size=1, max_size=4),
                adl=st.sampled_from([None, (300, 100), (100, 50), (30, 10)]),
                caps=st.sampled_from([None, None, 100, 300]))
    def some_positions(self, opens, adl, caps):
        """Start with a few leveraged positions, maybe a low ADL trigger on ETH and maybe low
        profit caps (the traders' on ETH and the pool value's), so liquidation, ADL and the
        caps have material within a short program."""
        for i, coll, lev in opens:
            self.increase(i * 5 + 4, coll, lev, 0, "any")  # key i
            self._check_step()
        if adl or caps:
            self.set_risk_config(0, adl or (7_000, 5_000), 1_000, caps or 9_000, "default", False)
            self._check_step()
        if caps:
            self.set_max_pnl_factor(caps, False)
            self._check_step()

    def _check_step(self):
        self.run_invariants()


class LpTradingMachine(Base, TradingRules, LpRules, LpOrderRules):
    """LP (deposit, redeem, donate, insurance top-up; deposit and redeem orders placed,
    executed, cancelled, credits claimed), trading, oracle, time."""


class RiskMachine(Base, TradingRules, LpRules, RiskRules, LpOrderRules):
    """Liquidation, ADL, bounded config changes, pause and claims, over trading, oracle,
    time and LP steps (direct and through LP orders: so LP orders also meet pauses, the
    pnl caps and bad debt)."""


def replay(machine_cls: type, world: World, program: list[tuple[str, dict]], check=None) -> dict:
    """Run a fixed program of rules, every invariant after each step, in its own snapshot
    (how a counterexample becomes a deterministic regression test). `check(machine, i)`
    runs after step i; returns the machine's stats."""
    world.label = f"regression_{world.decimals}dec"
    m = machine_cls(world)
    try:
        m.run_invariants()
        for i, (name, kwargs) in enumerate(program):
            getattr(m, name)(**kwargs)
            m.run_invariants()
            if check is not None:
                check(m, i)
        return dict(m.stats)
    finally:
        m.teardown()
