"""Solvency: total_owed is the sum of the buckets and the token balance always covers it."""

import ape
from hypothesis import given, settings
from hypothesis import strategies as st
from chain_isolation import isolated


def owed(vault):
    return (
        vault.pool_amount()
        + vault.collateral_amount()
        + vault.escrow_amount()
        + vault.insurance_amount()
        + vault.claimable_amount()
    )


def test_fresh_vault__owes_nothing_and_is_solvent(vault, token):
    assert vault.total_owed() == 0 == token.balanceOf(vault)
    assert vault.is_solvent()


def test_deposits_and_redeem__owed_equals_balance(
    vault, token, lp, other_lp, unit, pass_cooldown
):
    vault.deposit(10_000 * unit + 1, 0, lp, sender=lp)
    vault.deposit(2_500 * unit + 2, 0, other_lp, sender=other_lp)
    assert vault.total_owed() == vault.pool_amount() == 12_500 * unit + 3
    assert token.balanceOf(vault) == vault.total_owed()
    pass_cooldown()
    paid = vault.redeem(vault.balanceOf(lp) // 2, 0, lp, sender=lp).return_value
    assert vault.total_owed() == 12_500 * unit + 3 - paid == token.balanceOf(vault)
    assert vault.is_solvent()


def test_settlements__owed_is_the_sum_of_buckets(vault, token, lp, trader, keeper, settle, unit):
    vault.deposit(50_000 * unit, 0, lp, sender=lp)
    settle(account_in=trader, amount_in=1_000 * unit, collateral_delta=1_000 * unit)
    settle(account_in=trader, amount_in=300 * unit, escrow_delta=300 * unit)
    settle(collateral_delta=-10 * unit, pool_delta=8 * unit, insurance_delta=2 * unit)
    settle(
        collateral_delta=-990 * unit,
        pool_delta=-100 * unit,
        account_out=trader,
        amount_out=1_090 * unit,
    )
    settle(escrow_delta=-300 * unit, account_out=keeper, amount_out=300 * unit)
    assert vault.total_owed() == owed(vault) == 50_000 * unit - 92 * unit + 2 * unit
    assert token.balanceOf(vault) == vault.total_owed()
    assert vault.is_solvent()


def test_fund_insurance__adds_to_the_fund_and_owed(vault, token, trader, unit, logs_of):
    trader_tokens = token.balanceOf(trader)
    amount = 750 * unit + 3

    tx = vault.fund_insurance(amount, sender=trader)

    assert vault.insurance_amount() == amount
    assert vault.total_owed() == amount == token.balanceOf(vault)
    assert token.balanceOf(trader) == trader_tokens - amount
    assert vault.pool_amount() == 0 and vault.totalSupply() == 0  # not LP money
    [log] = tx.decode_logs(vault.InsuranceFunded)
    assert (log.sender, log.amount) == (trader.address, amount)
    [pull] = logs_of(tx, token.Transfer, token)
    assert (pull.sender, pull.receiver, pull.value) == (trader.address, vault.address, amount)
    assert vault.is_solvent()


def test_fund_insurance__does_not_change_share_price(vault, lp, trader, unit):
    vault.deposit(1_000 * unit, 0, lp, sender=lp)
    prices = (vault.share_price(True), vault.share_price(False))
    vault.fund_insurance(500 * unit, sender=trader)
    assert (vault.share_price(True), vault.share_price(False)) == prices


def test_fund_insurance__zero_amount__reverts(vault, trader, snapshot):
    before = snapshot()
    with ape.reverts("vault: zero amount"):
        vault.fund_insurance(0, sender=trader)
    assert snapshot() == before


def test_donation__balance_above_owed__still_solvent(vault, token, lp, attacker, unit):
    vault.deposit(1_000 * unit, 0, lp, sender=lp)
    token.transfer(vault, 5 * unit, sender=attacker)
    assert vault.total_owed() == 1_000 * unit
    assert token.balanceOf(vault) == 1_005 * unit
    assert vault.is_solvent()


# ------------------------------------------------------------------ property

OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["deposit", "redeem", "open", "close", "insurance", "escrow", "credit", "claim"]
        ),
        st.integers(1, 10_000),  # size, in whole-ish tokens
        st.integers(-5_000, 5_000),  # pnl in bps of the collateral, for "close"
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=10, deadline=None)
@given(ops=OPS)
def test_property__balance_always_equals_owed(
    vault, token, deployer, lp, other_lp, trader, controller, keeper, chain, unit, model, ops
):
    """Every flow moves the token balance and the buckets by the same amount."""
    zero = model.ZERO
    with isolated(chain):
        vault.set_cooldown(0, sender=deployer)
        vault.deposit(100_000 * unit, 0, lp, sender=lp)
        for op, size, pnl_bps in ops:
            amount = size * unit // 3 + size
            if op == "deposit":
                vault.deposit(amount, 0, other_lp, sender=other_lp)
            elif op == "redeem":
                shares = vault.balanceOf(lp) * size // 20_000
                paid, pool = model.quote_redeem(vault, shares).amount, vault.pool_amount()
                if paid == 0:
                    continue
                if paid > pool or pool - paid < vault.reserved_amount():
                    with ape.reverts("vault: reserved"):
                        vault.redeem(shares, 0, lp, sender=lp)
                else:
                    vault.redeem(shares, 0, lp, sender=lp)
            elif op == "open":
                vault.settle(
                    (trader, amount, 0, amount, 0, 0, zero, 0, amount * 3, zero, 0), sender=controller
                )
            elif op == "close":
                collateral = vault.collateral_amount()
                pnl = max(-collateral, min(collateral * pnl_bps // 10_000, vault.pool_amount()))
                vault.settle(
                    (zero, 0, -pnl, -collateral, 0, 0, trader, collateral + pnl, 0, zero, 0),
                    sender=controller,
                )
            elif op == "insurance":
                vault.fund_insurance(amount, sender=trader)
            elif op == "credit":  # a keeper's fee out of a position's collateral
                fee = min(amount, vault.collateral_amount())
                vault.settle((zero, 0, 0, -fee, 0, 0, zero, 0, 0, keeper, fee), sender=controller)
            elif op == "claim":
                if vault.claimable(keeper) == 0:
                    continue
                vault.claim(keeper, sender=keeper)
            else:
                vault.settle(
                    (trader, amount, 0, 0, amount, 0, zero, 0, 0, zero, 0), sender=controller
                )
            assert token.balanceOf(vault) == vault.total_owed() == owed(vault)
            assert vault.is_solvent()
