"""The OrderBook's money, under random programs of orders (trades and LP deposits and
redeems), price pushes (one market or every market), executions by keepers and strangers,
cancels and time (hypothesis). After every step:

- the Vault's escrow equals what the live orders hold (an increase: collateral + fee; a
  decrease or trigger: the fee; an LP deposit: amount + fee; an LP redeem: the fee only);
- the OrderBook's LP shares equal Σ shares of the live redeem orders; every account's shares
  and the share supply are what the model says (deposits mint, redeem orders escrow, fills
  burn, refusals and cancels give them back);
- the Vault's token balance equals its buckets plus what it owes, and each account's
  claimable is what the fills and cancels logged (LP ones as predicted);
- every order the model thinks is live is stored as placed (LP orders: amount, shares,
  least accepted, fee, placed_at and price_floor).

LP orders are predicted exactly: at creation (the refusal reason, or the floor = the newest
of the block time and every market's observation); at every execution (pending while not a
keeper before the timeout, or while some market is stale or has no observation newer than
the floor; expired: everything back to the owner; else the Vault's formula at the pool value
of the moment it fills: `perp.pool_value(True/False)` read in a dry run of the batch up to
that order, at the same pinned block time, giving the shares or amount, or the refusal code
"zero shares" / "slippage" / "zero amount" / "reserved"); a filled LP order is asserted to
have had a newer price in every market. Trade orders' creation refusals are not modelled
here (tests/unit/perp/test_orders.py has them): a refused step changes nothing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import ape
import pytest
from hypothesis import HealthCheck, event, example, given, settings, strategies as st

from helpers import WAD, ceil_div, fast_reverts, isolated, pin  # noqa: F401 (autouse fixture)
from orders_helpers import (
    BY_OWNER, EXPIRED, FEE, LIMIT_INCREASE, MARKET_DECREASE, MARKET_INCREASE, STOP_LOSS, TAKE_PROFIT, any_price, moved,
)
from perpool.prices import push_stepped

LP_DEPOSIT, LP_REDEEM = 5, 6
LP_KINDS = (LP_DEPOSIT, LP_REDEEM)
VAULT_ZERO_SHARES, VAULT_SLIPPAGE, VAULT_ZERO_AMOUNT, VAULT_RESERVED = 51, 52, 54, 55
BPS = 10_000
HUGE_MIN = 2**95  # a least-accepted that no fill meets (slippage)
TOO_LARGE_MIN = 2**96  # above the order book's bound
SEED_SHARES_USD = 50_000  # each of the first two people deposits this before the programs


@dataclass
class Live:
    owner: str
    kind: int
    collateral: int  # token units (increase: escrowed; LP deposit: the amount)
    size: int  # WAD USD; LP redeem: the shares escrowed
    fee: int
    placed_at: int = 0
    floor: int = 0  # LP orders: a fill needs every market observed after this
    min_out: int = 0  # LP orders: least shares (deposit) or token units (redeem)

    def escrow(self) -> int:
        if self.kind == LP_DEPOSIT:
            return self.collateral + self.fee
        return self.fee + (self.collateral if self.kind <= LIMIT_INCREASE else 0)

    def market_order(self) -> bool:
        return self.kind in (MARKET_INCREASE, MARKET_DECREASE) or self.kind in LP_KINDS


@dataclass
class Model:
    """What the program expects besides the live orders."""

    live: dict  # order id -> Live
    price: dict  # market -> WAD, the last pushed
    clock: int  # the latest block time seen
    shares: dict  # account -> LP shares
    supply: int
    claimable: dict  # account -> token units credited in the Vault
    seen: Counter = field(default_factory=Counter)  # LP outcomes: "deposit filled", "redeem refused 52"...

    def saw(self, what: str) -> None:
        self.seen[what] += 1
        event(what)  # `--hypothesis-show-statistics` lists them


@pytest.fixture(scope="module")
def people(env, accounts):
    """Three traders and LPs; the first two hold LP shares past their cooldown; all markets
    pushed fresh after that."""
    out = [accounts[4], accounts[7], accounts[8]]
    for a in out:
        env.fund(a, 5_000_000)
    for a in out[:2]:
        env.vault.deposit(env.usd(SEED_SHARES_USD), 0, a, sender=a)
    pin(env, env.chain.blocks.head.timestamp + env.vault.cooldown() + 1)
    env.chain.mine()
    stored = {m: env.oracle.price_data(m).price for m in env.markets.values()}
    t = push_stepped(env.oracle, env.chain, env.keeper, stored)
    pin(env, t)
    return out


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, people):
    """Module fixtures before any test (Ape's isolation never rebases a snapshot)."""


# hypothesis favours the first of each list: the usual case goes first
WHICH = st.sampled_from(["all", "eth", "btc", "all", "eth"])  # markets a push covers
create = st.tuples(
    st.just("create"),
    st.integers(0, 2),  # who
    st.sampled_from([MARKET_INCREASE] * 4 + [LIMIT_INCREASE, MARKET_DECREASE, MARKET_DECREASE, TAKE_PROFIT, STOP_LOSS]),
    st.booleans(),  # long
    st.sampled_from([0, 50, 1_000, 1_000, 3_000]),  # collateral, dollars (0 with size 0: nothing to do)
    st.sampled_from([0, 1_000, 10_000, 10_000, 30_000]),  # size, dollars
    st.integers(10, 300),  # trigger distance, bps (on the side that is not met yet)
    st.integers(0, 3),  # extra fee, in minimum fees
)
# least accepted: none, the quote at the value now (the fill's own price decides), a bit below
# it, never met (slippage), beyond the order book's bound (refused at creation)
MIN_OUT = st.sampled_from(["none", "quote", "none", "quote", "99%", "huge", "too large"])
FEE_EXTRA = st.sampled_from([0, 1, 0, 3, -1])  # in minimum fees; -1: one unit below the minimum
deposit = st.tuples(
    st.just("deposit"), st.integers(0, 2),
    st.sampled_from([5_000, 50_000, 100, -1, 5_000, 250_000, 0]),  # dollars; -1: one token unit
    MIN_OUT, FEE_EXTRA,
)
redeem = st.tuples(
    st.just("redeem"), st.sampled_from([0, 1, 0, 1, 2]),  # the first two hold shares
    st.sampled_from([0.5, 0.1, 1, "wei", 0.5, 1.01, 0]),  # of the model's balance
    MIN_OUT, FEE_EXTRA,
)
push = st.tuples(st.just("push"), st.integers(-150, 150), WHICH)
execute = st.tuples(st.just("execute"), st.booleans())  # by a keeper, or by a stranger
push_execute = st.tuples(st.just("push_execute"), st.integers(-100, 100), WHICH)
cancel = st.tuples(st.just("cancel"), st.integers(0, 50), st.sampled_from(["owner", "owner", "stranger"]))
elapse = st.tuples(st.just("elapse"), st.sampled_from([5, 60, 200, 2_000]))
program = st.lists(
    st.one_of(deposit, redeem, create, push_execute, deposit, redeem, create, push_execute, push, execute, cancel,
              elapse),
    min_size=6, max_size=18,
)


def head(env) -> int:
    return env.chain.provider.get_block("latest").timestamp


def markets(env) -> list[int]:
    return list(env.markets.values())


def check(env, model: Model, people) -> None:
    vault, orders = env.vault, env.orders
    live = model.live
    assert vault.escrow_amount() == sum(o.escrow() for o in live.values())
    owed = vault.pool_amount() + vault.collateral_amount() + vault.escrow_amount() + vault.insurance_amount()
    assert env.token.balanceOf(vault) == owed + vault.claimable_amount()
    assert vault.balanceOf(orders) == sum(o.size for o in live.values() if o.kind == LP_REDEEM)
    assert vault.totalSupply() == model.supply
    for a, n in model.shares.items():
        assert vault.balanceOf(a) == n, a
    for a, n in model.claimable.items():
        assert vault.claimable(a) == n, a
    for order_id, o in live.items():
        s = orders.get_order(order_id)
        assert (s.owner, s.kind, s.size_delta, s.execution_fee) == (o.owner, o.kind, o.size, o.fee)
        if o.kind in LP_KINDS:
            assert (s.market, s.collateral_delta, s.acceptable_price, s.placed_at, s.price_floor) == (
                0, o.collateral, o.min_out, o.placed_at, o.floor)


def credit(model: Model, account: str, amount: int) -> None:
    model.claimable[account] = model.claimable.get(account, 0) + amount


def lp_state(env, people) -> tuple:
    """Everything an LP order refusal must leave unchanged."""
    accounts = [p.address for p in people]
    return (
        env.orders.next_order_id(), env.vault.escrow_amount(), env.vault.totalSupply(), env.vault.pool_amount(),
        [env.token.balanceOf(a) for a in accounts + [env.vault.address]],
        [env.vault.balanceOf(a) for a in accounts + [env.orders.address]],
    )


def min_out(env, choice: str, quote: int) -> int:
    return {"none": 0, "quote": quote, "99%": quote * 99 // 100, "huge": HUGE_MIN, "too large": TOO_LARGE_MIN}[choice]


def quote_deposit(env, amount: int) -> tuple[int, int]:
    """Vault._deposit at the max pool value now: (refusal code or 0, shares)."""
    fee = ceil_div(amount * env.vault.mint_fee_bps(), BPS)
    shares = (amount - fee) * env.scale * env.vault.totalSupply() // env.perp.pool_value(True)
    return (VAULT_ZERO_SHARES, 0) if shares == 0 else (0, shares)


def quote_redeem(env, shares: int) -> tuple[int, int]:
    """Vault._redeem at the min pool value now: (refusal code or 0, token units)."""
    gross = shares * env.perp.pool_value(False) // env.vault.totalSupply() // env.scale
    amount = gross - ceil_div(gross * env.vault.burn_fee_bps(), BPS)
    if amount == 0:
        return VAULT_ZERO_AMOUNT, 0
    pool = env.vault.pool_amount()
    if amount > pool or pool - amount < env.vault.reserved_amount():
        return VAULT_RESERVED, 0
    return 0, amount


def lp_precheck(env, o: Live, t: int, is_keeper: bool) -> str:
    """OrderBook._precheck of an LP order at block time t: "expired", "pending" or "fill"."""
    if t >= o.placed_at + env.orders.expiry():
        return "expired"
    if not is_keeper and t < o.placed_at + env.orders.timeout():
        return "pending"
    age = env.oracle.config().max_price_age
    for m in markets(env):
        observed = env.oracle.price_timestamp(m)
        if observed + age < t or observed <= o.floor:
            return "pending"
    return "fill"


def create_lp(env, step, people, model: Model) -> None:
    name, who, size, choice, extra = step
    owner = people[who]
    fee = FEE * (1 + extra) if extra >= 0 else FEE - 1
    t = max(head(env), model.clock)
    pin(env, t)
    if name == "deposit":
        amount = 1 if size == -1 else env.usd(size)
        quote = quote_deposit(env, amount)[1] if amount else 0
        shares, call = 0, env.orders.create_deposit_order
        args = (amount,)
    else:
        held = model.shares.get(owner.address, 0)
        if size == "wei":
            shares = 1
        elif size == 1.01:
            shares = held + 1
        else:
            shares = int(held * size) if isinstance(size, float) else held * size
        quote = quote_redeem(env, shares)[1] if shares else 0
        amount, call = 0, env.orders.create_redeem_order
        args = (shares,)
    least = min_out(env, choice, quote)
    reason = None
    if name == "deposit" and amount == 0:
        reason = "orders: zero amount"
    elif name == "redeem" and shares == 0:
        reason = "orders: zero shares"
    elif least > 2**96 - 1:
        reason = "orders: min out too large"
    elif fee < FEE:
        reason = "orders: fee below min"
    elif name == "redeem" and t < env.vault.last_deposit_at(owner) + env.vault.cooldown():
        reason = "vault: cooldown"
    elif name == "redeem" and shares > held:
        reason = "vault: insufficient shares"
    if reason is not None:
        before = lp_state(env, people)
        with ape.reverts(reason):
            call(*args, least, fee, sender=owner)
        assert lp_state(env, people) == before
        model.saw(f"{name} order refused: {reason}")
        return
    floor = max([t] + [env.oracle.price_timestamp(m) for m in markets(env)])
    tx = call(*args, least, fee, sender=owner)
    assert tx.timestamp == t
    model.live[tx.return_value] = Live(owner.address, LP_DEPOSIT if name == "deposit" else LP_REDEEM, amount, shares,
                                       fee, placed_at=t, floor=floor, min_out=least)
    if name == "redeem":
        model.shares[owner.address] -= shares
    model.saw(f"{name} order placed")


def do_push(env, model: Model, bps: int, which: str, keeper) -> None:
    ids = {"eth": [env.eth], "btc": [env.btc], "all": markets(env)}[which]
    new = [moved(model.price[m], bps) for m in ids]
    # one second after every block so far and every observation: newer than every order
    t = max([model.clock, head(env)] + [env.oracle.price_timestamp(m) for m in markets(env)]) + 1
    pin(env, t)
    def seen():
        return env.vault.escrow_amount(), env.token.balanceOf(env.vault), [env.oracle.price_data(m) for m in ids]

    before = seen()
    try:
        env.oracle.set_prices(ids, new, t, sender=keeper)
    except ape.exceptions.ContractLogicError:
        # an Oracle bound (not modelled here: tests/unit/oracle has them): nothing changed
        assert seen() == before
        return
    for m, p in zip(ids, new):
        model.price[m] = p
    model.clock = t


def do_execute(env, model: Model, sender, is_keeper: bool) -> None:
    live = model.live
    ids = list(live)
    t = max(head(env), model.clock)
    pin(env, t)
    # LP orders: what the order book decides before asking the Vault, then the Vault's
    # formula at the pool value each meets, read in a dry run of the batch up to it
    decide = {i: lp_precheck(env, live[i], t, is_keeper) for i in ids if live[i].kind in LP_KINDS}
    quotes: dict[int, tuple[int, int]] = {}
    filling = [k for k, i in enumerate(ids) if decide.get(i) == "fill"]
    if filling:
        snap = env.chain.snapshot()
        done = 0
        for k in filling:
            if k > done:
                pin(env, t)
                env.orders.execute_orders(ids[done:k], sender, sender=sender)
                done = k
            pin(env, t)
            assert head(env) == t
            o = live[ids[k]]
            code, out = quote_deposit(env, o.collateral) if o.kind == LP_DEPOSIT else quote_redeem(env, o.size)
            if code == 0 and out < o.min_out:
                code, out = VAULT_SLIPPAGE, 0
            quotes[ids[k]] = (code, out)
        env.chain.restore(snap)
    pin(env, t)
    tx = env.orders.execute_orders(ids, sender, sender=sender)
    assert tx.timestamp == t
    model.clock = max(model.clock, tx.timestamp)
    executed = {log.order_id: log for log in tx.decode_logs(env.orders.OrderExecuted)}
    cancelled = {log.order_id: log for log in tx.decode_logs(env.orders.OrderCancelled)}
    assert tuple(tx.return_value) == (len(executed), len(cancelled))
    # the Vault's logs of the batch, in the order the fills happened (ids ascending)
    deposits = list(tx.decode_logs(env.vault.Deposit))
    redeems = list(tx.decode_logs(env.vault.Redeem))
    newest_needed = min(env.oracle.price_timestamp(m) for m in markets(env))
    for order_id in ids:
        o = live[order_id]
        if o.kind in LP_KINDS:
            check_lp_outcome(env, model, order_id, o, decide[order_id], quotes.get(order_id), executed, cancelled,
                             deposits, redeems, sender, newest_needed)
        elif order_id in executed:
            e = executed[order_id]
            credit(model, o.owner, e.amount_credited)
            credit(model, sender.address, e.execution_fee)
        elif order_id in cancelled:
            c = cancelled[order_id]
            credit(model, o.owner, c.refund)
            if c.fee_paid:
                credit(model, sender.address, c.fee_paid)
        if order_id in executed or order_id in cancelled:
            live.pop(order_id)
    assert deposits == [] and redeems == [], "a Vault fill no LP order predicted"


def check_lp_outcome(env, model, order_id, o: Live, decision, quote, executed, cancelled, deposits, redeems, sender,
                     newest_needed) -> None:
    kind = "deposit" if o.kind == LP_DEPOSIT else "redeem"
    if decision == "pending":
        assert order_id not in executed and order_id not in cancelled, f"LP order {order_id} was not due"
        model.saw(f"{kind} order pending")
        return
    if decision == "expired":
        c = cancelled[order_id]
        refund = o.collateral + o.fee if o.kind == LP_DEPOSIT else o.fee
        assert (c.reason_code, c.refund, c.fee_paid, c.shares_refund) == (EXPIRED, refund, 0, o.size)
        credit(model, o.owner, refund)
        if o.kind == LP_REDEEM:
            model.shares[o.owner] += o.size
        model.saw(f"{kind} order expired")
        return
    code, out = quote
    if code:
        c = cancelled[order_id]
        refund = o.collateral if o.kind == LP_DEPOSIT else 0
        assert (c.reason_code, c.reason, c.refund, c.fee_paid, c.shares_refund) == (
            code, env.vault.lp_reason(code), refund, o.fee, o.size)
        assert c.fee_receiver == sender.address
        credit(model, o.owner, refund)
        credit(model, sender.address, o.fee)
        if o.kind == LP_REDEEM:
            model.shares[o.owner] += o.size
        model.saw(f"{kind} order refused at the fill: {code}")
        return
    # filled: never before a price newer than the order in every market
    assert newest_needed > o.floor, f"LP order {order_id} filled without a newer price in every market"
    e = executed[order_id]
    assert (e.owner, e.market, e.price, e.execution_fee, e.fee_receiver) == (o.owner, 0, 0, o.fee, sender.address)
    credit(model, sender.address, o.fee)
    model.saw(f"{kind} order filled")
    if o.kind == LP_DEPOSIT:
        d = deposits.pop(0)
        assert (d.sender, d.receiver, d.amount, d.shares, e.amount_credited) == (o.owner, o.owner, o.collateral, out, 0)
        model.shares[o.owner] = model.shares.get(o.owner, 0) + out
        model.supply += out
    else:
        r = redeems.pop(0)
        assert (r.sender, r.receiver, r.shares, r.amount, e.amount_credited) == (o.owner, o.owner, o.size, out, out)
        credit(model, o.owner, out)
        model.supply -= o.size


def do_cancel(env, model: Model, pick: int, who: str, people) -> None:
    live = model.live
    if not live:
        return
    order_id = sorted(live)[pick % len(live)]
    o = live[order_id]
    stranger = people[2] if o.owner != people[2].address else people[0]
    sender = o.owner if who == "owner" else stranger.address
    t = max(head(env), model.clock)
    pin(env, t)
    reason = None
    if who == "owner":
        if o.market_order() and t < o.placed_at + env.orders.timeout():
            reason = "orders: too early to cancel"
    elif not (o.market_order() and t >= o.placed_at + env.orders.expiry()):
        reason = "orders: not owner"
    kind = {LP_DEPOSIT: "deposit", LP_REDEEM: "redeem"}.get(o.kind, "trade")
    if reason is not None:
        before = (lp_state(env, people), [tuple(env.orders.get_order(i)) for i in live])
        with ape.reverts(reason):
            env.orders.cancel_order(order_id, sender=sender)
        assert (lp_state(env, people), [tuple(env.orders.get_order(i)) for i in live]) == before
        model.saw(f"{kind} order refused: {reason}")
        return
    owner_tokens = env.token.balanceOf(o.owner)
    tx = env.orders.cancel_order(order_id, sender=sender)
    c = tx.decode_logs(env.orders.OrderCancelled)[0]
    refund = o.escrow()
    assert (c.order_id, c.reason_code, c.refund, c.fee_paid, c.shares_refund) == (
        order_id, BY_OWNER if who == "owner" else EXPIRED, refund, 0, o.size if o.kind == LP_REDEEM else 0)
    if who == "owner":  # transferred
        assert env.token.balanceOf(o.owner) == owner_tokens + refund
    else:  # credited
        credit(model, o.owner, refund)
    if o.kind == LP_REDEEM:
        model.shares[o.owner] += o.size
    live.pop(order_id)
    model.saw(f"{kind} order cancelled: {'by owner' if who == 'owner' else 'expired'}")


def apply(env, step, people, model: Model) -> None:
    name = step[0]
    keeper, stranger = env.keeper, people[2]
    if name == "create":
        _, who, kind, is_long, collateral, size, distance, extra = step
        owner = people[who]
        trigger = 0
        if kind not in (MARKET_INCREASE, MARKET_DECREASE):
            waits_below = (kind == TAKE_PROFIT) != is_long
            trigger = moved(model.price[env.eth], -distance if waits_below else distance)
        fee = FEE * (1 + extra)
        before = (dict(model.live), env.vault.escrow_amount(), env.token.balanceOf(env.vault))
        try:
            tx = env.orders.create_order(
                env.eth, kind, is_long, env.usd(collateral), size * WAD, any_price(kind, is_long), trigger, fee,
                sender=owner)
        except ape.exceptions.ContractLogicError:
            # a refusal (bad input, trigger already met, a price bound): nothing changed
            assert (dict(model.live), env.vault.escrow_amount(), env.token.balanceOf(env.vault)) == before
            return
        model.live[tx.return_value] = Live(owner.address, kind, env.usd(collateral), size * WAD, fee,
                                           placed_at=tx.timestamp)
        model.clock = max(model.clock, tx.timestamp)
    elif name in ("deposit", "redeem"):
        create_lp(env, step, people, model)
    elif name == "push_execute":
        do_push(env, model, step[1], step[2], keeper)
        do_execute(env, model, keeper, True)
    elif name == "push":
        do_push(env, model, step[1], step[2], keeper)
    elif name == "execute":
        do_execute(env, model, keeper if step[1] else stranger, step[1])
    elif name == "cancel":
        do_cancel(env, model, step[1], step[2], people)
    elif name == "elapse":
        env.chain.mine(deltatime=step[1])
        model.clock = max(model.clock, head(env))


FILLS = [  # always run: an open and a close filled, a top-up, a refused and an expired order
    ("create", 0, MARKET_INCREASE, True, 1_000, 10_000, 100, 0),
    ("create", 1, MARKET_INCREASE, False, 50, 30_000, 100, 1),
    ("push_execute", 20, "eth"),
    ("create", 0, MARKET_INCREASE, True, 1_000, 0, 100, 0),
    ("create", 0, MARKET_DECREASE, True, 0, 10_000, 100, 0),
    ("push_execute", -20, "eth"),
    ("create", 2, MARKET_INCREASE, True, 3_000, 10_000, 100, 2),
    ("elapse", 2_000),
    ("execute", False),
]
LP_FILLS = [  # always run: LP orders filled, refused at the fill and at creation, pending, expired, cancelled
    ("create", 1, MARKET_INCREASE, False, 1_000, 10_000, 100, 0),
    ("deposit", 0, 50_000, "none", 0),  # fills
    ("deposit", 2, -1, "none", 1),  # one token unit: zero shares at the fill
    ("redeem", 1, 0.5, "huge", 0),  # slippage at the fill, the shares back
    ("redeem", 0, "wei", "none", 0),  # zero amount at the fill
    ("redeem", 1, 0.1, "none", 0),  # fills
    ("redeem", 2, 1.01, "none", 0),  # refused: no shares
    ("deposit", 1, 5_000, "too large", 0),  # refused at creation
    ("deposit", 1, 5_000, "none", -1),  # refused: fee below the minimum
    ("push_execute", 30, "eth"),  # one market newer: the trade fills, the LP orders wait
    ("execute", False),  # a stranger before the timeout: nothing
    ("push_execute", -30, "all"),  # every market newer: every LP order decided
    ("redeem", 0, 0.5, "none", 0),  # refused: the deposit's fill started the cooldown
    ("redeem", 1, 0.5, "quote", 2),
    ("cancel", 0, "owner"),  # too early
    ("elapse", 200),
    ("cancel", 0, "owner"),  # past the timeout: back to the owner
    ("deposit", 2, 250_000, "99%", 0),
    ("redeem", 1, 0.1, "quote", 0),
    ("elapse", 2_000),
    ("cancel", 0, "stranger"),  # the deposit expired: anyone cancels it, credited to the owner
    ("execute", True),  # the redeem expired: cancelled, everything back
]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=program)
@example(steps=FILLS)
@example(steps=LP_FILLS)
def test_orders_money__random_programs__escrow_and_vault_always_balance(env, people, steps):
    with isolated(env.chain):  # not chain.isolate(): it swallows failed asserts
        model = Model(
            live={}, price={m: env.oracle.price_data(m).price for m in markets(env)}, clock=head(env),
            shares={p.address: env.vault.balanceOf(p) for p in people}, supply=env.vault.totalSupply(),
            claimable={a.address: env.vault.claimable(a) for a in (*people, env.keeper)},
        )
        check(env, model, people)
        for step in steps:
            apply(env, step, people, model)
            check(env, model, people)
        if steps == LP_FILLS:  # the fixed program reached what it is for
            for what in ("deposit order filled", "redeem order filled", "deposit order refused at the fill: 51",
                         "redeem order refused at the fill: 52", "redeem order refused at the fill: 54",
                         "deposit order pending", "redeem order pending", "redeem order expired",
                         "deposit order cancelled: expired", "redeem order cancelled: by owner",
                         "redeem order refused: orders: too early to cancel",
                         "redeem order refused: vault: insufficient shares", "redeem order refused: vault: cooldown",
                         "deposit order refused: orders: min out too large",
                         "deposit order refused: orders: fee below min"):
                assert model.seen[what], (what, model.seen)
