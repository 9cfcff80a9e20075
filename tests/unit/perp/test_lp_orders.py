"""LP orders: deposits and redeems through the OrderBook, filled at a pool value priced
after the request (issue #8's finding: an LP who knows the keeper's next price must not be
able to deposit before it and redeem after it).

Every fill is checked against the Vault's formulas (`quote_*` below, restating
contracts/Vault.vy) at the pool value of the block that fills it; every refusal changes
nothing; every cancel returns the escrow (tokens, shares and the fee as the rule says)."""

from __future__ import annotations

import ape
import pytest

from helpers import WAD, ceil_div, elapse, fast_reverts, open_position, pin  # noqa: F401 (autouse fixture)
from orders_helpers import (
    BY_OWNER,
    CANCELLED,
    EXECUTED,
    EXPIRED,
    FEE,
    NOT_FOUND,
    PENDING,
    PRICE_NOT_NEWER,
    PRICE_STALE,
    TOO_EARLY,
    execute,
    exists,
    order_state,
    status,
)
from perpool.prices import push_stepped

LP_DEPOSIT, LP_REDEEM = 5, 6
VAULT_PAUSED, VAULT_SLIPPAGE, VAULT_DILUTES = 48, 52, 53
BPS = 10_000
ZERO = "0x0000000000000000000000000000000000000000"


@pytest.fixture(scope="module")
def receiver(accounts):
    """Where keepers have their fees credited."""
    return accounts[9]


@pytest.fixture(scope="module")
def depositor(env, accounts):
    env.fund(accounts[4])
    return accounts[4]


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, depositor, receiver, lp, funded_trader, deployer, attacker):
    """Module fixtures before any test (Ape's isolation never rebases a snapshot)."""


def push_all(env, moves: dict[int, int] | None = None) -> int:
    """Push every market (at its stored price, or moved by `moves`: market -> bps), observed
    one second after the head; the clock stays there (pinned)."""
    prices = {m: env.oracle.price_data(m).price for m in env.markets.values()}
    for m, bps in (moves or {}).items():
        prices[m] = prices[m] * (BPS + bps) // BPS
    t = push_stepped(env.oracle, env.chain, env.keeper, prices)
    pin(env, t)
    return t


def quote_deposit(env, amount: int) -> int:
    """Vault._deposit: shares for `amount` at the max pool value (shares round down)."""
    fee = ceil_div(amount * env.vault.mint_fee_bps(), BPS)
    return (amount - fee) * env.scale * env.vault.totalSupply() // env.perp.pool_value(True)


def quote_redeem(env, shares: int) -> int:
    """Vault._redeem: token units for `shares` at the min pool value, less the burn fee."""
    gross = shares * env.perp.pool_value(False) // env.vault.totalSupply() // env.scale
    return gross - ceil_div(gross * env.vault.burn_fee_bps(), BPS)


def deposit_order(env, who, amount, min_shares=0, fee=FEE):
    tx = env.orders.create_deposit_order(amount, min_shares, fee, sender=who)
    return tx.return_value, tx


def redeem_order(env, who, shares, min_amount=0, fee=FEE):
    tx = env.orders.create_redeem_order(shares, min_amount, fee, sender=who)
    return tx.return_value, tx


def lp_state(env, ids, accounts):
    """Everything an LP refusal must leave unchanged: orders, escrow, buckets, shares."""
    return {
        **order_state(env, ids, accounts),
        "pool": env.vault.pool_amount(),
        "supply": env.vault.totalSupply(),
        "shares": [env.vault.balanceOf(a) for a in accounts] + [env.vault.balanceOf(env.orders)],
        "cooldowns": [env.vault.last_deposit_at(a) for a in accounts],
    }


def refused(env, accounts, ids, reason, call, *args, **kwargs):
    before = lp_state(env, ids, accounts)
    with ape.reverts(reason):
        call(*args, **kwargs)
    assert lp_state(env, ids, accounts) == before


def after_cooldown(env) -> int:
    return elapse(env, env.vault.cooldown() + 1, env.eth, env.oracle.price_data(env.eth).price)


# ---------------------------------------------------------------- deposits


def test_deposit_order__escrows_then_fills_only_after_every_market_has_a_newer_price(env, depositor, receiver):
    amount = env.usd(50_000)
    token_before = env.token.balanceOf(depositor)
    escrow_before = env.vault.escrow_amount()
    oid, tx = deposit_order(env, depositor, amount)
    created = tx.decode_logs(env.orders.OrderCreated)[0]
    assert (created.kind, created.market, created.collateral_delta, created.execution_fee) == (LP_DEPOSIT, 0, amount, FEE)
    newest = max(env.oracle.price_timestamp(m) for m in env.markets.values())
    assert created.price_floor == max(newest, tx.timestamp)
    assert env.token.balanceOf(depositor) == token_before - amount - FEE
    assert env.vault.escrow_amount() == escrow_before + amount + FEE
    assert env.vault.balanceOf(depositor) == 0

    # the stored prices are not newer than the order; one market's push is not enough
    assert status(env, oid) == (PENDING, PRICE_NOT_NEWER)
    t = push_stepped(env.oracle, env.chain, env.keeper, {env.eth: env.oracle.price_data(env.eth).price})
    pin(env, t)
    assert status(env, oid) == (PENDING, PRICE_NOT_NEWER)
    execute(env, [oid], receiver)
    assert exists(env, oid)

    push_all(env, {env.eth: -100})
    assert status(env, oid) == (EXECUTED, 0)
    shares = quote_deposit(env, amount)
    claim_before = env.vault.claimable(receiver)
    tx = execute(env, [oid], receiver)
    assert tx.return_value == (1, 0)
    assert not exists(env, oid)
    assert env.vault.balanceOf(depositor) == shares > 0
    assert env.vault.last_deposit_at(depositor) == tx.timestamp
    assert env.vault.escrow_amount() == escrow_before
    assert env.vault.claimable(receiver) == claim_before + FEE
    dep = tx.decode_logs(env.vault.Deposit)[0]
    assert (dep.sender, dep.receiver, dep.amount, dep.shares) == (depositor.address, depositor.address, amount, shares)
    done = tx.decode_logs(env.orders.OrderExecuted)[0]
    assert (done.order_id, done.price, done.amount_credited) == (oid, 0, 0)


def test_deposit_order__refusals_at_creation_change_nothing(env, depositor, deployer):
    who = (depositor,)
    refused(env, who, [], "orders: zero amount", env.orders.create_deposit_order, 0, 0, FEE, sender=depositor)
    refused(env, who, [], "orders: amount too large", env.orders.create_deposit_order, 2**96, 0, FEE, sender=depositor)
    refused(env, who, [], "orders: min out too large", env.orders.create_deposit_order, 1, 2**96, FEE, sender=depositor)
    refused(env, who, [], "orders: fee below min", env.orders.create_deposit_order, env.usd(10), 0, FEE - 1, sender=depositor)
    env.vault.set_paused(True, sender=deployer)
    refused(env, who, [], "orders: deposits paused", env.orders.create_deposit_order, env.usd(10), 0, FEE, sender=depositor)


def test_deposit_order__slippage_cancels_it_fee_to_keeper_amount_credited_back(env, depositor, receiver):
    amount = env.usd(20_000)
    oid, _ = deposit_order(env, depositor, amount, min_shares=2**95)
    push_all(env)
    pool, supply = env.vault.pool_amount(), env.vault.totalSupply()
    tx = execute(env, [oid], receiver)
    assert tx.return_value == (0, 1)
    gone = tx.decode_logs(env.orders.OrderCancelled)[0]
    assert (gone.reason_code, gone.reason, gone.refund, gone.fee_paid, gone.shares_refund) == (
        VAULT_SLIPPAGE, "vault: slippage", amount, FEE, 0)
    assert env.vault.claimable(depositor) == amount
    assert env.vault.claimable(receiver) == FEE
    assert (env.vault.pool_amount(), env.vault.totalSupply(), env.vault.escrow_amount()) == (pool, supply, 0)
    assert env.vault.balanceOf(depositor) == 0


def test_deposit_order__waits_out_a_vault_pause(env, depositor, receiver, deployer):
    oid, _ = deposit_order(env, depositor, env.usd(5_000))
    env.vault.set_paused(True, sender=deployer)
    push_all(env)
    assert status(env, oid) == (PENDING, VAULT_PAUSED)
    assert env.orders.reason(VAULT_PAUSED) == "vault: paused"
    assert execute(env, [oid], receiver).return_value == (0, 0)
    assert exists(env, oid)
    env.vault.set_paused(False, sender=deployer)
    shares = quote_deposit(env, env.usd(5_000))
    assert execute(env, [oid], receiver).return_value == (1, 0)
    assert env.vault.balanceOf(depositor) == shares


def test_deposit_order__a_stale_market_keeps_it_pending(env, depositor, receiver):
    oid, _ = deposit_order(env, depositor, env.usd(5_000))
    age = env.oracle.config().max_price_age
    t = env.chain.blocks.head.timestamp + age + 1
    pin(env, t)
    env.oracle.set_prices([env.eth], [env.oracle.price_data(env.eth).price], t, sender=env.keeper)
    assert env.oracle.is_stale(env.btc)
    assert status(env, oid) == (PENDING, PRICE_STALE)
    push_all(env)
    assert status(env, oid) == (EXECUTED, 0)


def test_deposit_order__owner_cancels_only_after_the_timeout_and_gets_everything(env, depositor):
    amount = env.usd(7_000)
    start = env.token.balanceOf(depositor)
    oid, tx = deposit_order(env, depositor, amount)
    refused(env, (depositor,), [oid], "orders: too early to cancel", env.orders.cancel_order, oid, sender=depositor)
    assert status(env, oid, as_keeper=False) == (PENDING, TOO_EARLY)
    pin(env, tx.timestamp + env.orders.timeout())
    gone = env.orders.cancel_order(oid, sender=depositor).decode_logs(env.orders.OrderCancelled)[0]
    assert (gone.reason_code, gone.refund, gone.fee_paid) == (BY_OWNER, amount + FEE, 0)
    assert env.token.balanceOf(depositor) == start
    assert env.vault.escrow_amount() == 0
    assert status(env, oid) == (PENDING, NOT_FOUND)


def test_deposit_order__expires_then_anyone_cancels_it_to_the_owners_credit(env, depositor, attacker):
    amount = env.usd(7_000)
    oid, tx = deposit_order(env, depositor, amount)
    env.chain.mine(timestamp=tx.timestamp + env.orders.expiry())
    assert status(env, oid, as_keeper=False) == (CANCELLED, EXPIRED)
    env.orders.cancel_order(oid, sender=attacker)
    assert env.vault.claimable(depositor) == amount + FEE
    assert env.vault.claimable(attacker) == 0


def test_lp_orders_cannot_be_updated(env, depositor):
    oid, _ = deposit_order(env, depositor, env.usd(1_000))
    refused(env, (depositor,), [oid], "orders: market order", env.orders.update_order, oid, 0, 0, 1, sender=depositor)


def test_deposit_order__refused_if_it_would_dilute_under_the_pnl_cap(env, depositor, receiver, funded_trader, deployer):
    """The Vault's no-dilution rule holds for orders too: the order is cancelled with the
    Vault's reason, the pool written back, the amount credited back."""
    open_position(env, funded_trader, env.eth, True, env.usd(100_000), 900_000 * WAD)
    env.configurator.set_max_pnl_factor(100, sender=deployer)
    after_cooldown(env)
    oid, _ = deposit_order(env, depositor, env.usd(500_000))
    push_all(env, {env.eth: 200})
    push_all(env, {env.eth: 200})
    pool_wad = env.vault.pool_amount() * env.scale
    assert env.perp.position_values(funded_trader, env.eth, True, env.oracle.get_price(env.eth, False)).pnl > pool_wad // 100
    pool, supply = env.vault.pool_amount(), env.vault.totalSupply()
    tx = execute(env, [oid], receiver)
    gone = tx.decode_logs(env.orders.OrderCancelled)[0]
    assert (gone.reason_code, gone.reason) == (VAULT_DILUTES, "vault: deposit would dilute")
    assert (env.vault.pool_amount(), env.vault.totalSupply(), env.vault.balanceOf(depositor)) == (pool, supply, 0)
    assert env.vault.claimable(depositor) == env.usd(500_000)


# ---------------------------------------------------------------- redeems


def test_redeem_order__takes_the_shares_then_credits_the_tokens_at_a_newer_price(env, lp, receiver):
    after_cooldown(env)  # the LP's seed deposit started its cooldown
    shares = env.vault.balanceOf(lp) // 10
    oid, tx = redeem_order(env, lp, shares)
    created = tx.decode_logs(env.orders.OrderCreated)[0]
    assert (created.kind, created.size_delta, created.collateral_delta) == (LP_REDEEM, shares, 0)
    assert env.vault.balanceOf(env.orders) == shares
    assert status(env, oid) == (PENDING, PRICE_NOT_NEWER)
    push_all(env, {env.btc: 150})
    amount = quote_redeem(env, shares)
    supply = env.vault.totalSupply()
    pool = env.vault.pool_amount()
    tx = execute(env, [oid], receiver)
    assert tx.return_value == (1, 0)
    assert env.vault.balanceOf(env.orders) == 0
    assert env.vault.totalSupply() == supply - shares
    assert env.vault.pool_amount() == pool - amount
    assert env.vault.claimable(lp) == amount > 0
    red = tx.decode_logs(env.vault.Redeem)[0]
    assert (red.sender, red.receiver, red.shares, red.amount) == (lp.address, lp.address, shares, amount)
    assert tx.decode_logs(env.orders.OrderExecuted)[0].amount_credited == amount
    before = env.token.balanceOf(lp)
    env.vault.claim(lp, sender=lp)
    assert env.token.balanceOf(lp) == before + amount


def test_redeem_order__refusals_at_creation_change_nothing(env, lp, depositor, attacker):
    after_cooldown(env)  # the LP's seed deposit started its cooldown
    who = (lp, depositor)
    refused(env, who, [], "orders: zero shares", env.orders.create_redeem_order, 0, 0, FEE, sender=lp)
    refused(env, who, [], "orders: shares too large", env.orders.create_redeem_order, 2**128, 0, FEE, sender=lp)
    refused(env, who, [], "orders: min out too large", env.orders.create_redeem_order, 1, 2**96, FEE, sender=lp)
    refused(env, who, [], "vault: insufficient shares", env.orders.create_redeem_order, env.vault.balanceOf(lp) + 1, 0, FEE, sender=lp)
    env.fund(attacker)
    refused(env, who, [], "vault: insufficient shares", env.orders.create_redeem_order, 1, 0, FEE, sender=attacker)
    # a fresh depositor is in its cooldown
    env.vault.deposit(env.usd(1_000), 0, depositor, sender=depositor)
    refused(env, who, [], "vault: cooldown", env.orders.create_redeem_order, 1, 0, FEE, sender=depositor)


def test_redeem_order__slippage_cancels_it_and_the_shares_go_back(env, lp, receiver):
    after_cooldown(env)  # the LP's seed deposit started its cooldown
    shares = env.vault.balanceOf(lp) // 10
    oid, _ = redeem_order(env, lp, shares, min_amount=2**95)
    push_all(env)
    tx = execute(env, [oid], receiver)
    gone = tx.decode_logs(env.orders.OrderCancelled)[0]
    assert (gone.reason_code, gone.reason, gone.refund, gone.fee_paid, gone.shares_refund) == (
        VAULT_SLIPPAGE, "vault: slippage", 0, FEE, shares)
    assert env.vault.balanceOf(env.orders) == 0
    assert env.vault.claimable(receiver) == FEE
    assert env.vault.claimable(lp) == 0


def test_redeem_order__owner_cancel_after_timeout_returns_shares_and_fee(env, lp):
    after_cooldown(env)  # the LP's seed deposit started its cooldown
    shares = env.vault.balanceOf(lp)
    tokens = env.token.balanceOf(lp)
    oid, tx = redeem_order(env, lp, shares // 3)
    pin(env, tx.timestamp + env.orders.timeout())
    env.orders.cancel_order(oid, sender=lp)
    assert env.vault.balanceOf(lp) == shares
    assert env.token.balanceOf(lp) == tokens
    assert env.vault.balanceOf(env.orders) == 0


# ---------------------------------------------------------------- the Vault's side


def test_lp_orders_only__direct_deposit_and_redeem_refused_orders_still_work(env, lp, depositor, receiver, deployer, attacker):
    after_cooldown(env)  # the LP's seed deposit started its cooldown
    refused(env, (lp,), [], "vault: not admin", env.vault.set_lp_orders_only, True, sender=attacker)
    tx = env.vault.set_lp_orders_only(True, sender=deployer)
    assert tx.decode_logs(env.vault.LpOrdersOnlySet)[0].enabled == 1
    assert env.vault.lp_orders_only()
    who = (lp, depositor)
    refused(env, who, [], "vault: LP orders only", env.vault.deposit, env.usd(1_000), 0, depositor, sender=depositor)
    refused(env, who, [], "vault: LP orders only", env.vault.redeem, 10**18, 0, lp, sender=lp)
    d, _ = deposit_order(env, depositor, env.usd(1_000))
    r, _ = redeem_order(env, lp, 10**18)
    push_all(env)
    assert execute(env, [d, r], receiver).return_value == (2, 0)
    env.vault.set_lp_orders_only(False, sender=deployer)
    assert not env.vault.lp_orders_only()


def test_vault_escrow_entries_are_controllers_only(env, lp, attacker):
    who = (lp, attacker)
    refused(env, who, [], "vault: not controller", env.vault.deposit_escrowed, attacker, 1, 0, sender=attacker)
    refused(env, who, [], "vault: not controller", env.vault.redeem_escrowed, attacker, 1, 0, sender=attacker)
    refused(env, who, [], "vault: not controller", env.vault.take_shares, lp, 1, sender=attacker)


def test_reason_names_every_vault_code(env):
    words = {
        48: "vault: paused", 49: "vault: first deposit too small", 50: "vault: pool value zero",
        51: "vault: zero shares", 52: "vault: slippage", 53: "vault: deposit would dilute",
        54: "vault: zero amount", 55: "vault: reserved", 56: "vault: redeem beyond its share",
    }
    for code, word in words.items():
        assert env.vault.lp_reason(code) == word
        assert env.orders.reason(code) == word
    assert env.vault.lp_reason(57) == "vault: unknown reason"


def test_first_deposit_of_a_public_deploy_goes_through_an_order(project, deployer, keeper, depositor, receiver, chain):
    """Off a local network the deploy takes LP orders only, so the pool's first deposit is an
    order: it mints 1e15 dead shares and the rest to the LP; under $1 it is refused (code 49)
    and credited back."""
    from helpers import Env
    from perpool.deploy import deploy_protocol

    token = deployer.deploy(project.TestToken, "Test USD", "tUSD", 6)
    fresh = Env.of(deploy_protocol(project, deployer, token, updaters=(keeper,), chain=chain, direct_lp=False), keeper, chain)
    assert fresh.vault.lp_orders_only()
    fresh.fund(depositor)
    small, _ = deposit_order(fresh, depositor, fresh.usd(1))  # $1 less the 10 bps fee: under $1
    amount = fresh.usd(100_000)
    oid, _ = deposit_order(fresh, depositor, amount)
    push_all(fresh)
    tx = execute(fresh, [small, oid], receiver)
    assert tx.return_value == (1, 1)
    gone = tx.decode_logs(fresh.orders.OrderCancelled)[0]
    assert (gone.order_id, gone.reason_code, gone.reason) == (small, 49, "vault: first deposit too small")
    assert fresh.vault.claimable(depositor) == fresh.usd(1)
    net = (amount - ceil_div(amount * fresh.vault.mint_fee_bps(), BPS)) * fresh.scale
    assert fresh.vault.balanceOf(depositor) == net - 10**15
    assert fresh.vault.balanceOf("0x000000000000000000000000000000000000dEaD") == 10**15
    assert fresh.vault.pool_amount() == amount and fresh.vault.escrow_amount() == 0
    assert fresh.vault.is_solvent()
