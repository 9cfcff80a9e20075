"""Vault.redeem: payout, burn fee, cooldown, reserved amount, refusals; the LP round trip."""

from fractions import Fraction

import ape
import pytest


@pytest.fixture
def pooled(vault, lp, other_lp, unit, pass_cooldown):
    """Two LPs in the pool (odd amounts, so every division rounds), cooldowns over."""
    vault.deposit(10_000 * unit + unit // 7, 0, lp, sender=lp)
    vault.deposit(4_321 * unit + unit // 3, 0, other_lp, sender=other_lp)
    pass_cooldown()
    return vault


def test_redeem__after_cooldown__pays_floor_of_value_less_fee(
    pooled, token, lp, model, logs_of
):
    vault = pooled
    shares = vault.balanceOf(lp) // 3
    supply, pool = vault.totalSupply(), vault.pool_amount()
    lp_tokens = token.balanceOf(lp)
    q = model.quote_redeem(vault, shares)
    assert q.gross == shares * pool * vault.token_scale() // supply // vault.token_scale()
    assert q.fee == -(-q.gross * model.BURN_FEE_BPS // model.BPS)  # rounded up

    tx = vault.redeem(shares, 0, lp, sender=lp)

    assert tx.return_value == q.amount
    assert token.balanceOf(lp) == lp_tokens + q.amount
    assert vault.pool_amount() == pool - q.amount  # the fee stays in the pool
    assert token.balanceOf(vault) == pool - q.amount
    assert vault.totalSupply() == supply - shares
    [log] = tx.decode_logs(vault.Redeem)
    assert (log.sender, log.receiver) == (lp.address, lp.address)
    assert (log.shares, log.amount, log.fee) == (shares, q.amount, q.fee)
    burns = [(e.sender, e.receiver, e.value) for e in logs_of(tx, vault.Transfer, vault)]
    assert burns == [(lp.address, model.ZERO, shares)]


def test_redeem__all_shares__empties_balance(pooled, token, lp, model):
    vault = pooled
    shares = vault.balanceOf(lp)
    q = model.quote_redeem(vault, shares)
    lp_tokens = token.balanceOf(lp)

    vault.redeem(shares, 0, lp, sender=lp)

    assert vault.balanceOf(lp) == 0
    assert token.balanceOf(lp) == lp_tokens + q.amount


def test_redeem__to_other_receiver__pays_receiver_burns_sender(
    pooled, token, lp, fresh_account, model
):
    vault = pooled
    shares = vault.balanceOf(lp) // 2
    lp_shares, lp_tokens = vault.balanceOf(lp), token.balanceOf(lp)
    q = model.quote_redeem(vault, shares)

    tx = vault.redeem(shares, 0, fresh_account, sender=lp)

    assert token.balanceOf(fresh_account) == q.amount
    assert token.balanceOf(lp) == lp_tokens
    assert vault.balanceOf(lp) == lp_shares - shares
    [log] = tx.decode_logs(vault.Redeem)
    assert (log.sender, log.receiver, log.amount) == (lp.address, fresh_account.address, q.amount)


def test_redeem__burn_fee__raises_remaining_lps_value(pooled, lp, other_lp, model):
    vault = pooled
    other_value = model.quote_redeem(vault, vault.balanceOf(other_lp)).gross
    price = vault.share_price(False)

    vault.redeem(vault.balanceOf(lp), 0, lp, sender=lp)

    assert vault.share_price(False) > price
    assert model.quote_redeem(vault, vault.balanceOf(other_lp)).gross > other_value


def test_redeem__min_amount_equal_to_payout__succeeds(pooled, lp, model):
    shares = pooled.balanceOf(lp) // 5
    q = model.quote_redeem(pooled, shares)
    tx = pooled.redeem(shares, q.amount, lp, sender=lp)
    assert tx.return_value == q.amount


def test_redeem__exactly_at_cooldown_end__succeeds(vault, lp, unit, chain, model):
    tx = vault.deposit(1_000 * unit, 0, lp, sender=lp)
    chain.pending_timestamp = tx.timestamp + vault.cooldown()
    shares = vault.balanceOf(lp) // 2
    q = model.quote_redeem(vault, shares)
    tx = vault.redeem(shares, 0, lp, sender=lp)
    assert tx.return_value == q.amount


def test_redeem__one_second_before_cooldown_end__reverts(
    vault, lp, unit, chain, snapshot
):
    tx = vault.deposit(1_000 * unit, 0, lp, sender=lp)
    chain.pending_timestamp = tx.timestamp + vault.cooldown() - 1
    before = snapshot()
    with ape.reverts("vault: cooldown"):
        vault.redeem(vault.balanceOf(lp) // 2, 0, lp, sender=lp)
    assert snapshot() == before


def test_redeem__during_cooldown__reverts(vault, lp, unit, snapshot):
    vault.deposit(1_000 * unit, 0, lp, sender=lp)
    before = snapshot()
    with ape.reverts("vault: cooldown"):
        vault.redeem(vault.balanceOf(lp), 0, lp, sender=lp)
    assert snapshot() == before


def test_redeem__after_new_deposit__cooldown_restarted__reverts(pooled, lp, unit, snapshot):
    pooled.deposit(unit, 0, lp, sender=lp)  # restarts lp's cooldown over all its shares
    before = snapshot()
    with ape.reverts("vault: cooldown"):
        pooled.redeem(pooled.balanceOf(lp) // 2, 0, lp, sender=lp)
    assert snapshot() == before


def test_redeem__dust_deposit_for_lp_by_other__refused_and_cooldown_untouched(
    pooled, lp, attacker, chain, model, scale, snapshot
):
    """Griefing attempt: restarting an LP's cooldown with a dust deposit in its name. A
    deposit for another receiver needs that receiver's approval, so it is refused and the
    LP redeems once its own cooldown is over."""
    vault = pooled
    supply, value = vault.totalSupply(), vault.pool_amount() * scale
    dust = 1
    while model.deposit(dust, model.MINT_FEE_BPS, scale, supply, value).shares == 0:
        dust += 1
    started = vault.last_deposit_at(lp)
    before = snapshot()
    with ape.reverts("vault: depositor not approved"):
        vault.deposit(dust, 0, lp, sender=attacker)
    assert snapshot() == before
    # the LP's own cooldown is over (the fixture may already have moved time past it)
    chain.pending_timestamp = max(started + vault.cooldown(), chain.blocks.head.timestamp + 1)
    shares = vault.balanceOf(lp)
    q = model.quote_redeem(vault, shares)
    assert vault.redeem(shares, 0, lp, sender=lp).return_value == q.amount


def test_redeem__zero_cooldown__same_block_allowed(vault, deployer, lp, unit, model):
    vault.set_cooldown(0, sender=deployer)
    vault.deposit(1_000 * unit, 0, lp, sender=lp)
    q = model.quote_redeem(vault, vault.balanceOf(lp))
    assert vault.redeem(vault.balanceOf(lp), 0, lp, sender=lp).return_value == q.amount


# ------------------------------------------------------------------ refusals


def test_redeem__zero_shares__reverts(pooled, lp, snapshot):
    before = snapshot()
    with ape.reverts("vault: zero shares"):
        pooled.redeem(0, 0, lp, sender=lp)
    assert snapshot() == before


def test_redeem__zero_receiver__reverts(pooled, lp, model, snapshot):
    before = snapshot()
    with ape.reverts("vault: zero receiver"):
        pooled.redeem(pooled.balanceOf(lp), 0, model.ZERO, sender=lp)
    assert snapshot() == before


def test_redeem__more_than_balance__reverts_insufficient_shares(pooled, lp, snapshot):
    before = snapshot()
    with ape.reverts("vault: insufficient shares"):
        pooled.redeem(pooled.balanceOf(lp) + 1, 0, lp, sender=lp)
    assert snapshot() == before


def test_redeem__without_shares__reverts_insufficient_shares(pooled, attacker, snapshot):
    before = snapshot()
    with ape.reverts("vault: insufficient shares"):
        pooled.redeem(1, 0, attacker, sender=attacker)
    assert snapshot() == before


def test_redeem__dust_shares__reverts_zero_amount(pooled, lp, model, snapshot):
    q = model.quote_redeem(pooled, 1)
    assert q.amount == 0  # one share-wei is worth at most a unit, and the fee rounds up
    before = snapshot()
    with ape.reverts("vault: zero amount"):
        pooled.redeem(1, 0, lp, sender=lp)
    assert snapshot() == before


def test_redeem__min_amount_above_payout__reverts_slippage(pooled, lp, model, snapshot):
    shares = pooled.balanceOf(lp) // 5
    q = model.quote_redeem(pooled, shares)
    before = snapshot()
    with ape.reverts("vault: slippage"):
        pooled.redeem(shares, q.amount + 1, lp, sender=lp)
    assert snapshot() == before


def test_redeem__leaving_exactly_reserved__succeeds(pooled, settle, lp, model):
    vault = pooled
    shares = vault.balanceOf(lp) // 2
    q = model.quote_redeem(vault, shares)
    reserved = vault.pool_amount() - q.amount
    settle(reserved_delta=reserved)

    assert vault.redeem(shares, 0, lp, sender=lp).return_value == q.amount
    assert vault.pool_amount() == reserved == vault.reserved_amount()


def test_redeem__below_reserved__reverts(pooled, settle, lp, model, snapshot):
    vault = pooled
    shares = vault.balanceOf(lp) // 2
    q = model.quote_redeem(vault, shares)
    settle(reserved_delta=vault.pool_amount() - q.amount + 1)  # one unit short
    before = snapshot()
    with ape.reverts("vault: reserved"):
        vault.redeem(shares, 0, lp, sender=lp)
    assert snapshot() == before


def test_redeem__reserved_released__succeeds_again(pooled, settle, lp, model):
    vault = pooled
    shares = vault.balanceOf(lp)
    reserved = vault.pool_amount()
    settle(reserved_delta=reserved)
    with ape.reverts("vault: reserved"):
        vault.redeem(shares, 0, lp, sender=lp)
    settle(reserved_delta=-reserved)
    q = model.quote_redeem(vault, shares)
    assert vault.redeem(shares, 0, lp, sender=lp).return_value == q.amount


# ------------------------------------------------------------------ LP round trip


@pytest.mark.parametrize(
    "mint_bps,burn_bps", [(0, 0), (30, 0), (0, 30), (30, 30), (100, 100)]
)
def test_lp_round_trip__loses_exactly_the_fees_within_rounding(
    vault, token, deployer, lp, other_lp, unit, scale, model, pass_cooldown, mint_bps, burn_bps
):
    """An LP who deposits and redeems everything at an unchanged pool value loses the mint
    fee, less its own pro-rata share of that fee (which stays in the pool it just joined),
    plus the burn fee; the only other cost is the documented rounding in the pool's favour:
    shares round down (at most one share-wei's worth) and the amount paid rounds down (less
    than one token unit). Everything the LP loses stays in the pool."""
    vault.deposit(1_000_000 * unit + unit // 9, 0, other_lp, sender=other_lp)
    vault.set_fees(mint_bps, burn_bps, sender=deployer)
    pool, supply = vault.pool_amount(), vault.totalSupply()
    lp_tokens = token.balanceOf(lp)
    amount = 12_345 * unit + unit // 7

    # the formulas, step by step, at the pool value of the recorded pool amount
    dq = model.deposit(amount, mint_bps, scale, supply, pool * scale)
    rq = model.redeem(dq.shares, burn_bps, scale, supply + dq.shares, (pool + amount) * scale)

    shares = vault.deposit(amount, 0, lp, sender=lp).return_value
    pass_cooldown()
    received = vault.redeem(shares, 0, lp, sender=lp).return_value

    assert (shares, received) == (dq.shares, rq.amount)
    loss = lp_tokens - token.balanceOf(lp)
    assert loss == amount - received
    net = amount - dq.fee
    own_fee_share = Fraction(dq.fee * net, pool + net)  # token units, exact
    exact_loss = dq.fee - own_fee_share + rq.fee
    one_share_wei = Fraction(pool + amount, (supply + shares) * scale)  # in token units
    assert exact_loss <= loss < exact_loss + one_share_wei + 1
    assert vault.pool_amount() == pool + loss  # everything the LP lost stays in the pool
    assert vault.totalSupply() == supply
