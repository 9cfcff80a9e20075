"""The OrderBook's money, under random programs of orders, price pushes, executions by keepers
and strangers, cancels and time (hypothesis): after every step the Vault's escrow equals
what the live orders hold (collateral of increases + every fee), the Vault's token balance
equals its buckets plus what it owes (nothing created or lost), and every order the model
thinks is live is stored as placed. A refused step changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

import ape
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from helpers import WAD, fast_reverts, pin  # noqa: F401 (autouse fixture)
from orders_helpers import FEE, LIMIT_INCREASE, MARKET_DECREASE, MARKET_INCREASE, STOP_LOSS, TAKE_PROFIT, any_price, moved
from perpool import params

SEED = params.LOCAL_MARKETS["ETH"]


@dataclass
class Live:
    owner: str
    kind: int
    collateral: int
    size: int
    fee: int

    def escrow(self) -> int:
        return self.fee + (self.collateral if self.kind <= LIMIT_INCREASE else 0)


@pytest.fixture(scope="module")
def people(env, accounts):
    out = [accounts[4], accounts[7], accounts[8]]
    for a in out:
        env.fund(a)
    return out


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, people):
    """Module fixtures before any test (Ape's isolation never rebases a snapshot)."""


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
push = st.tuples(st.just("push"), st.integers(-150, 150))
execute = st.tuples(st.just("execute"), st.booleans())  # by a keeper, or by a stranger
push_execute = st.tuples(st.just("push_execute"), st.integers(-100, 100))
cancel = st.tuples(st.just("cancel"), st.integers(0, 50))
elapse = st.tuples(st.just("elapse"), st.sampled_from([5, 60, 200, 2_000]))
program = st.lists(
    st.one_of(create, create, create, push_execute, push_execute, push, execute, cancel, elapse), min_size=6, max_size=16
)


def check(env, live: dict[int, Live], accounts) -> None:
    vault = env.vault
    assert vault.escrow_amount() == sum(o.escrow() for o in live.values())
    owed = vault.pool_amount() + vault.collateral_amount() + vault.escrow_amount() + vault.insurance_amount()
    assert env.token.balanceOf(vault) == owed + vault.claimable_amount()
    for order_id, o in live.items():
        stored = env.orders.get_order(order_id)
        assert (stored.owner, stored.kind, stored.size_delta, stored.execution_fee) == (o.owner, o.kind, o.size, o.fee)


def apply(env, step, people, live: dict[int, Live], price: list[int], clock: list[int]) -> None:
    name = step[0]
    keeper, stranger = env.keeper, people[2]
    if name == "create":
        _, who, kind, is_long, collateral, size, distance, extra = step
        owner = people[who]
        trigger = 0
        if kind not in (MARKET_INCREASE, MARKET_DECREASE):
            waits_below = (kind == TAKE_PROFIT) != is_long
            trigger = moved(price[0], -distance if waits_below else distance)
        fee = FEE * (1 + extra)
        tx = env.orders.create_order(
            env.eth, kind, is_long, env.usd(collateral), size * WAD, any_price(kind, is_long), trigger, fee, sender=owner
        )
        live[tx.return_value] = Live(owner.address, kind, env.usd(collateral), size * WAD, fee)
        clock[0] = max(clock[0], tx.timestamp)
    elif name == "push_execute":
        apply(env, ("push", step[1]), people, live, price, clock)
        apply(env, ("execute", True), people, live, price, clock)
    elif name == "push":
        new = moved(price[0], step[1])
        # one second after every block so far and every observation: newer than every order
        t = max(clock[0], env.chain.provider.get_block("latest").timestamp, env.oracle.price_timestamp(env.eth)) + 1
        pin(env, t)
        env.oracle.set_prices([env.eth], [new], t, sender=keeper)
        price[0] = new
        clock[0] = t
    elif name == "execute":
        sender = keeper if step[1] else stranger
        tx = env.orders.execute_orders(list(live), sender, sender=sender)
        clock[0] = max(clock[0], tx.timestamp)
        gone = [log.order_id for log in tx.decode_logs(env.orders.OrderExecuted)]
        gone += [log.order_id for log in tx.decode_logs(env.orders.OrderCancelled)]
        assert sum(tx.return_value) == len(gone)
        for order_id in gone:
            live.pop(order_id)
    elif name == "cancel":
        if not live:
            return
        order_id = sorted(live)[step[1] % len(live)]
        tx = env.orders.cancel_order(order_id, sender=live[order_id].owner)
        assert tx.decode_logs(env.orders.OrderCancelled)[0].order_id == order_id
        live.pop(order_id)
    elif name == "elapse":
        env.chain.mine(deltatime=step[1])
        clock[0] = max(clock[0], env.chain.provider.get_block("latest").timestamp)


FILLS = [  # always run: an open and a close filled, a top-up, a refused and an expired order
    ("create", 0, MARKET_INCREASE, True, 1_000, 10_000, 100, 0),
    ("create", 1, MARKET_INCREASE, False, 50, 30_000, 100, 1),
    ("push_execute", 20),
    ("create", 0, MARKET_INCREASE, True, 1_000, 0, 100, 0),
    ("create", 0, MARKET_DECREASE, True, 0, 10_000, 100, 0),
    ("push_execute", -20),
    ("create", 2, MARKET_INCREASE, True, 3_000, 10_000, 100, 2),
    ("elapse", 2_000),
    ("execute", False),
]


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=program)
@example(steps=FILLS)
def test_orders_money__random_programs__escrow_and_vault_always_balance(env, people, steps):
    with env.chain.isolate():
        live: dict[int, Live] = {}
        price = [env.oracle.price_data(env.eth).price or SEED]
        clock = [env.chain.provider.get_block("latest").timestamp]  # the latest block time seen
        for step in steps:
            before = (dict(live), env.vault.escrow_amount(), env.token.balanceOf(env.vault))
            try:
                apply(env, step, people, live, price, clock)
            except ape.exceptions.ContractLogicError:
                # a refusal (bad input, too early, trigger already met, a price bound):
                # nothing changed
                assert (live, env.vault.escrow_amount(), env.token.balanceOf(env.vault)) == before
            check(env, live, people)
