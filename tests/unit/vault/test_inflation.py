"""Share-price manipulation: donations, the first-depositor inflation attack, dead shares."""

import ape
import pytest


def test_donation__changes_no_share_price_nor_payouts(
    vault, token, lp, other_lp, attacker, unit, model, pass_cooldown
):
    vault.deposit(5_000 * unit + 3, 0, lp, sender=lp)
    pool, supply = vault.pool_amount(), vault.totalSupply()
    prices = (vault.share_price(True), vault.share_price(False))
    owed = vault.total_owed()
    deposit_quote = model.quote_deposit(vault, 1_000 * unit)

    donation = 1_000_000 * unit
    token.transfer(vault, donation, sender=attacker)

    assert token.balanceOf(vault) == owed + donation
    assert (vault.pool_amount(), vault.totalSupply(), vault.total_owed()) == (pool, supply, owed)
    assert (vault.share_price(True), vault.share_price(False)) == prices
    assert vault.pool_value(True) == vault.pool_value(False) == pool * vault.token_scale()
    # a later LP gets what it would have got without the donation, and so does a redeem
    shares = vault.deposit(1_000 * unit, 0, other_lp, sender=other_lp).return_value
    assert shares == deposit_quote.shares
    pass_cooldown()
    redeem_quote = model.quote_redeem(vault, vault.balanceOf(lp))
    assert vault.redeem(vault.balanceOf(lp), 0, lp, sender=lp).return_value == redeem_quote.amount
    assert vault.is_solvent()


def test_first_deposit__mints_dead_shares_to_dead_address(vault, lp, unit, model, logs_of):
    tx = vault.deposit(100 * unit, 0, lp, sender=lp)
    assert vault.balanceOf(model.DEAD) == model.DEAD_SHARES
    dead_mints = [
        e for e in logs_of(tx, vault.Transfer, vault) if e.receiver == model.DEAD
    ]
    assert [(e.sender, e.value) for e in dead_mints] == [(model.ZERO, model.DEAD_SHARES)]


def test_first_deposit__below_one_dollar__reverts(vault, attacker, scale, model, snapshot):
    """An attacker cannot open the pool with a dust deposit (the classic inflation set-up)."""
    amount = model.min_first_deposit(model.MINT_FEE_BPS, scale) - 1
    before = snapshot()
    with ape.reverts("vault: first deposit too small"):
        vault.deposit(amount, 0, attacker, sender=attacker)
    assert snapshot() == before


def test_first_deposit__one_unit__reverts(vault, attacker, snapshot):
    before = snapshot()
    with ape.reverts("vault: first deposit too small"):
        vault.deposit(1, 0, attacker, sender=attacker)
    assert snapshot() == before


def test_dead_shares__keep_supply_above_zero_after_everyone_redeems(
    vault, lp, unit, model, pass_cooldown
):
    vault.deposit(100 * unit, 0, lp, sender=lp)
    pass_cooldown()
    vault.redeem(vault.balanceOf(lp), 0, lp, sender=lp)
    assert vault.totalSupply() == model.DEAD_SHARES
    assert vault.pool_amount() > 0  # the dead shares' value and the fees stay locked


def test_inflation_attack__minimum_first_deposit_then_donation__victim_keeps_its_value(
    vault, token, attacker, lp, unit, scale, model, pass_cooldown
):
    """The attacker opens the pool with the minimum, redeems all it can so that only the
    dead shares (and one share-wei) remain, then donates a large amount to inflate the
    price of a share. The donation is not recorded, so the victim is priced at the recorded
    pool amount and gets back its deposit less fees; the attacker only loses."""
    attacker_tokens = token.balanceOf(attacker)
    first = model.min_first_deposit(model.MINT_FEE_BPS, scale)
    shares = vault.deposit(first, 0, attacker, sender=attacker).return_value
    pass_cooldown()
    vault.redeem(shares - 1, 0, attacker, sender=attacker)  # keeps one share-wei
    assert vault.totalSupply() == model.DEAD_SHARES + 1
    token.transfer(vault, 10_000_000 * unit, sender=attacker)

    deposit = 20_000 * unit
    q = model.quote_deposit(vault, deposit)  # priced at the recorded pool amount
    minted = vault.deposit(deposit, 0, lp, sender=lp).return_value
    assert minted == q.shares
    pass_cooldown()
    r = model.quote_redeem(vault, minted)
    paid = vault.redeem(minted, 0, lp, sender=lp).return_value
    assert paid == r.amount

    assert paid >= deposit - q.fee - r.fee - 1  # only the fees and a unit of rounding
    assert token.balanceOf(attacker) < attacker_tokens - 10_000_000 * unit


def test_deposit__dust_eaten_by_fee__reverts_zero_shares(
    vault, lp, other_lp, unit, model, snapshot
):
    vault.deposit(100 * unit, 0, lp, sender=lp)
    q = model.quote_deposit(vault, 1)
    assert q.shares == 0
    before = snapshot()
    with ape.reverts("vault: zero shares"):
        vault.deposit(1, 0, other_lp, sender=other_lp)
    assert snapshot() == before


@pytest.mark.parametrize("decimals", [18], indirect=True)  # see the docstring
def test_deposit__worth_less_than_one_share_wei__reverts_zero_shares(
    vault, deployer, settle, lp, other_lp, unit, model, snapshot
):
    """Without a fee, a deposit rounds to zero shares when it is worth less than one
    share-wei; the Vault refuses it instead of taking the money for nothing. Reachable
    without a pool value source only with 18 decimals: one unit of a 6-decimal token is
    worth 1e12 share-wei at about $1 a share."""
    vault.set_fees(0, 0, sender=deployer)
    vault.deposit(100 * unit, 0, lp, sender=lp)
    pool, supply = vault.pool_amount(), vault.totalSupply()
    assert supply == pool  # $1 a share: one share-wei per token unit
    # a trader's loss of one unit credited to the pool lifts a share-wei above one unit
    settle(account_in=lp, amount_in=1, pool_delta=1)
    q = model.quote_deposit(vault, 1)
    assert (q.fee, q.net_wad, q.shares) == (0, 1, 0)
    before = snapshot()
    with ape.reverts("vault: zero shares"):
        vault.deposit(1, 0, other_lp, sender=other_lp)
    assert snapshot() == before
