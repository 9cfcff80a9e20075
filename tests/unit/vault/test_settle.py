"""Vault.settle: balanced money movements for controllers (Perp), buckets, reserved amount."""

import ape
import pytest
from perpool.events import settled as decode_settled


@pytest.fixture
def pooled(vault, lp, unit):
    vault.deposit(100_000 * unit + unit // 7, 0, lp, sender=lp)
    return vault


@pytest.fixture
def opened(pooled, settle, trader, unit):
    """A trader's position: 1,500 tokens (and 3 units) of collateral in the Vault."""
    collateral = 1_500 * unit + 3
    settle(account_in=trader, amount_in=collateral, collateral_delta=collateral)
    return collateral


def buckets(vault):
    return (
        vault.pool_amount(),
        vault.collateral_amount(),
        vault.escrow_amount(),
        vault.insurance_amount(),
    )


def test_settle__open_position__pulls_collateral_and_records_reserved(
    pooled, token, trader, controller, settle, unit, logs_of
):
    vault = pooled
    pool = vault.pool_amount()
    trader_tokens, vault_tokens = token.balanceOf(trader), token.balanceOf(vault)
    collateral, reserved = 1_500 * unit + 3, 20_000 * unit + 1

    tx = settle(
        account_in=trader, amount_in=collateral, collateral_delta=collateral, reserved_delta=reserved
    )

    assert buckets(vault) == (pool, collateral, 0, 0)
    assert vault.reserved_amount() == reserved
    assert token.balanceOf(trader) == trader_tokens - collateral
    assert token.balanceOf(vault) == vault_tokens + collateral
    [log] = [decode_settled(x) for x in tx.decode_logs(vault.Settled)]
    assert log.controller == controller.address
    assert log.reserved_delta == reserved
    assert log.pool_delta + log.collateral_delta + log.escrow_delta + log.insurance_delta == collateral
    assert (log.pool_delta, log.collateral_delta, log.escrow_delta, log.insurance_delta) == (
        0,
        collateral,
        0,
        0,
    )
    [pull] = logs_of(tx, token.Transfer, token)
    assert (pull.sender, pull.receiver, pull.value) == (trader.address, vault.address, collateral)


def test_settle__close_in_profit__pays_collateral_and_profit_from_pool(
    pooled, opened, token, trader, settle, unit, logs_of
):
    vault = pooled
    pool = vault.pool_amount()
    trader_tokens, vault_tokens = token.balanceOf(trader), token.balanceOf(vault)
    profit = 321 * unit + 9
    paid = opened + profit

    tx = settle(
        collateral_delta=-opened, pool_delta=-profit, account_out=trader, amount_out=paid
    )

    assert buckets(vault) == (pool - profit, 0, 0, 0)
    assert token.balanceOf(trader) == trader_tokens + paid
    assert token.balanceOf(vault) == vault_tokens - paid
    [log] = [decode_settled(x) for x in tx.decode_logs(vault.Settled)]
    assert (log.pool_delta, log.collateral_delta) == (-profit, -opened)
    assert log.pool_delta + log.collateral_delta + log.escrow_delta + log.insurance_delta == -paid
    [pay] = logs_of(tx, token.Transfer, token)
    assert (pay.sender, pay.receiver, pay.value) == (vault.address, trader.address, paid)


def test_settle__close_at_loss__pool_keeps_the_loss(pooled, opened, token, trader, settle, unit):
    vault = pooled
    pool = vault.pool_amount()
    trader_tokens = token.balanceOf(trader)
    loss = 400 * unit + 1

    settle(collateral_delta=-opened, pool_delta=loss, account_out=trader, amount_out=opened - loss)

    assert buckets(vault) == (pool + loss, 0, 0, 0)
    assert token.balanceOf(trader) == trader_tokens + opened - loss


def test_settle__fee_split__moves_between_buckets_without_transfer(
    pooled, opened, token, settle, unit, logs_of
):
    vault = pooled
    pool = vault.pool_amount()
    vault_tokens = token.balanceOf(vault)
    fee = 15 * unit + 7
    to_insurance = fee // 5

    tx = settle(collateral_delta=-fee, pool_delta=fee - to_insurance, insurance_delta=to_insurance)

    assert buckets(vault) == (pool + fee - to_insurance, opened - fee, 0, to_insurance)
    assert token.balanceOf(vault) == vault_tokens
    assert logs_of(tx, token.Transfer, token) == []


def test_settle__order_escrow__created_executed_and_cancelled(
    pooled, token, trader, settle, unit
):
    vault = pooled
    pool = vault.pool_amount()
    trader_tokens = token.balanceOf(trader)
    first, second = 200 * unit + 1, 300 * unit + 2

    settle(account_in=trader, amount_in=first + second, escrow_delta=first + second)
    assert buckets(vault) == (pool, 0, first + second, 0)

    settle(escrow_delta=-first, collateral_delta=first)  # the first order executes
    assert buckets(vault) == (pool, first, second, 0)

    settle(escrow_delta=-second, account_out=trader, amount_out=second)  # the second cancels
    assert buckets(vault) == (pool, first, 0, 0)
    assert token.balanceOf(trader) == trader_tokens - first


def test_settle__bad_debt__insurance_pays_before_lps_and_keeper_is_paid(
    pooled, opened, token, vault, keeper, trader, settle, unit
):
    pool = vault.pool_amount()
    funding = 1_000 * unit
    vault.fund_insurance(funding, sender=trader)
    keeper_fee = 5 * unit + 1
    shortfall = 250 * unit + 3  # the position owes the pool collateral + shortfall

    settle(
        collateral_delta=-opened,
        insurance_delta=-(shortfall + keeper_fee),
        pool_delta=opened + shortfall,
        account_out=keeper,
        amount_out=keeper_fee,
    )

    assert buckets(vault) == (pool + opened + shortfall, 0, 0, funding - shortfall - keeper_fee)
    assert token.balanceOf(keeper) == keeper_fee


def test_settle__pull_and_pay_in_one_step__both_transfers_happen(
    pooled, token, trader, keeper, settle, unit
):
    vault = pooled
    trader_tokens, vault_tokens = token.balanceOf(trader), token.balanceOf(vault)
    collateral, execution_fee = 700 * unit, 2 * unit + 5

    settle(
        account_in=trader,
        amount_in=collateral + execution_fee,
        collateral_delta=collateral,
        account_out=keeper,
        amount_out=execution_fee,
    )

    assert token.balanceOf(trader) == trader_tokens - collateral - execution_fee
    assert token.balanceOf(keeper) == execution_fee
    assert token.balanceOf(vault) == vault_tokens + collateral
    assert vault.collateral_amount() == collateral


def test_settle__bucket_taken_exactly_to_zero__succeeds(pooled, opened, trader, settle):
    settle(collateral_delta=-opened, account_out=trader, amount_out=opened)
    assert pooled.collateral_amount() == 0


def test_settle__reserved__moves_by_each_delta(pooled, settle, unit):
    vault = pooled
    settle(reserved_delta=30_000 * unit)
    assert vault.reserved_amount() == 30_000 * unit
    settle(reserved_delta=-(18_000 * unit - 5))
    assert vault.reserved_amount() == 12_000 * unit + 5
    settle()
    assert vault.reserved_amount() == 12_000 * unit + 5


def test_settle__reserved_below_zero__reverts(pooled, settle, unit, snapshot):
    vault = pooled
    settle(reserved_delta=unit)
    before = snapshot()
    with ape.reverts("vault: bucket underflow"):
        settle(reserved_delta=-unit - 1)
    assert snapshot() == before


def test_settle__zero_accounts_with_zero_amounts__allowed(pooled, opened, settle):
    tx = settle(collateral_delta=-1, pool_delta=1)
    [log] = [decode_settled(x) for x in tx.decode_logs(pooled.Settled)]
    assert (log.pool_delta, log.collateral_delta) == (1, -1)
    assert not tx.decode_logs(pooled.Transfer)  # no token moved


def test_settle__by_second_controller__allowed(pooled, deployer, keeper, settle, trader, unit):
    pooled.set_controller(keeper, True, sender=deployer)
    settle(sender=keeper, account_in=trader, amount_in=unit, collateral_delta=unit)
    assert pooled.collateral_amount() == unit


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("caller", ["attacker", "deployer", "lp"])
def test_settle__not_controller__reverts(request, pooled, opened, settle, snapshot, caller):
    """Neither an outsider, nor the admin, nor an LP can move money."""
    who = request.getfixturevalue(caller)
    before = snapshot()
    with ape.reverts("vault: not controller"):
        settle(sender=who, collateral_delta=-opened, account_out=who, amount_out=opened)
    assert snapshot() == before


def test_settle__revoked_controller__reverts(
    pooled, opened, deployer, controller, settle, snapshot
):
    pooled.set_controller(controller, False, sender=deployer)
    before = snapshot()
    with ape.reverts("vault: not controller"):
        settle(collateral_delta=-opened, account_out=controller, amount_out=opened)
    assert snapshot() == before


@pytest.mark.parametrize(
    "case",
    [
        dict(pool_delta=1),  # money out of nothing
        dict(pool_delta=-1),  # money destroyed
        dict(amount_in=10, collateral_delta=9),  # a unit pulled in is lost
        dict(amount_in=10, collateral_delta=11),
        dict(amount_out=10, collateral_delta=-9),  # pays more than it takes off the books
        dict(amount_in=5, amount_out=5, pool_delta=1, collateral_delta=-2),
    ],
    ids=["creates", "destroys", "in_short", "in_over", "out_over", "both"],
)
def test_settle__unbalanced__reverts(pooled, opened, trader, settle, snapshot, case):
    fields = dict(case)
    if fields.get("amount_in"):
        fields["account_in"] = trader
    if fields.get("amount_out"):
        fields["account_out"] = trader
    before = snapshot()
    with ape.reverts("vault: unbalanced settlement"):
        settle(**fields)
    assert snapshot() == before


def test_settle__amount_in_from_zero_account__reverts(pooled, settle, unit, snapshot):
    before = snapshot()
    with ape.reverts("vault: zero account"):
        settle(amount_in=unit, collateral_delta=unit)
    assert snapshot() == before


def test_settle__amount_out_to_zero_account__reverts(pooled, opened, settle, snapshot):
    before = snapshot()
    with ape.reverts("vault: zero account"):
        settle(collateral_delta=-opened, amount_out=opened)
    assert snapshot() == before


@pytest.mark.parametrize("bucket", ["pool", "collateral", "escrow", "insurance"])
def test_settle__bucket_below_zero__reverts_underflow(
    pooled, opened, vault, trader, settle, unit, snapshot, bucket
):
    vault.fund_insurance(10 * unit, sender=trader)
    settle(account_in=trader, amount_in=20 * unit, escrow_delta=20 * unit)
    held = dict(zip(("pool", "collateral", "escrow", "insurance"), buckets(vault)))
    other = "collateral" if bucket == "pool" else "pool"
    taken = held[bucket] + 1
    before = snapshot()
    with ape.reverts("vault: bucket underflow"):
        settle(**{f"{bucket}_delta": -taken, f"{other}_delta": taken})
    assert snapshot() == before
