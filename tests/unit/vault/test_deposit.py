"""Vault.deposit: share pricing, fee, first deposit, cooldown start, refusals."""

import ape
import pytest


@pytest.fixture
def seeded(vault, lp, unit):
    """The pool after `lp`'s first deposit of 10,000 tokens and a few odd units.

    Function-scoped on purpose: a module-scoped fixture's transactions would stay in the
    chain state of every later test of the module, even those that do not request it."""
    vault.deposit(10_000 * unit + unit // 7, 0, lp, sender=lp)
    return vault


def test_deposit__first__mints_net_wad_less_dead_shares(
    vault, token, lp, unit, scale, model, logs_of
):
    amount = 1_234 * unit + unit // 7  # odd, so the fee rounds
    q = model.quote_deposit(vault, amount)
    assert q.fee == amount * model.MINT_FEE_BPS // model.BPS + 1  # rounded up
    assert q.net_wad == (amount - q.fee) * scale
    lp_tokens = token.balanceOf(lp)

    tx = vault.deposit(amount, 0, lp, sender=lp)

    assert tx.return_value == q.shares == q.net_wad - model.DEAD_SHARES
    assert vault.balanceOf(lp) == q.shares
    assert vault.balanceOf(model.DEAD) == model.DEAD_SHARES
    assert vault.totalSupply() == q.net_wad  # one share per WAD of net deposit: $1
    assert vault.pool_amount() == amount  # the fee stays in the pool
    assert token.balanceOf(lp) == lp_tokens - amount
    assert token.balanceOf(vault) == amount
    assert vault.last_deposit_at(lp) == tx.timestamp
    [log] = tx.decode_logs(vault.Deposit)
    assert (log.sender, log.receiver) == (lp.address, lp.address)
    assert (log.amount, log.fee, log.shares) == (amount, q.fee, q.shares)
    mints = [(e.sender, e.receiver, e.value) for e in logs_of(tx, vault.Transfer, vault)]
    assert mints == [
        (model.ZERO, model.DEAD, model.DEAD_SHARES),
        (model.ZERO, lp.address, q.shares),
    ]


def test_deposit__into_pool__mints_floor_of_net_wad_times_supply_over_value(
    seeded, other_lp, unit, scale, model, logs_of
):
    vault = seeded
    supply, pool = vault.totalSupply(), vault.pool_amount()
    amount = 777 * unit + unit // 3
    q = model.deposit(amount, model.MINT_FEE_BPS, scale, supply, pool * scale)
    assert q.shares == (amount - q.fee) * scale * supply // (pool * scale)

    tx = vault.deposit(amount, 0, other_lp, sender=other_lp)

    assert tx.return_value == q.shares
    assert vault.balanceOf(other_lp) == q.shares
    assert vault.totalSupply() == supply + q.shares
    assert vault.pool_amount() == pool + amount
    assert vault.balanceOf(model.DEAD) == model.DEAD_SHARES  # dead shares only once
    [log] = tx.decode_logs(vault.Deposit)
    assert (log.amount, log.fee, log.shares) == (amount, q.fee, q.shares)
    [mint] = logs_of(tx, vault.Transfer, vault)
    assert (mint.sender, mint.receiver, mint.value) == (model.ZERO, other_lp.address, q.shares)


def test_deposit__into_pool__does_not_dilute_existing_lps(seeded, lp, other_lp, unit, model):
    vault = seeded
    price_before = vault.share_price(False)
    lp_value_before = model.quote_redeem(vault, vault.balanceOf(lp)).gross

    vault.deposit(5_000 * unit + 1, 0, other_lp, sender=other_lp)

    # the mint fee and the rounding of shares stay with the pool: no share loses value
    assert vault.share_price(False) >= price_before
    assert model.quote_redeem(vault, vault.balanceOf(lp)).gross >= lp_value_before


def test_deposit__without_fee__mints_exactly_net_value(
    vault, deployer, lp, other_lp, unit, scale, model
):
    vault.set_fees(0, 0, sender=deployer)
    amount = 2_000 * unit
    tx = vault.deposit(amount, 0, lp, sender=lp)
    assert tx.return_value == amount * scale - model.DEAD_SHARES
    [log] = tx.decode_logs(vault.Deposit)
    assert log.fee == 0

    supply, pool = vault.totalSupply(), vault.pool_amount()
    tx = vault.deposit(amount, 0, other_lp, sender=other_lp)
    assert tx.return_value == amount * scale * supply // (pool * scale) == amount * scale


def test_deposit__for_other_receiver__credits_receiver_and_starts_its_cooldown(
    seeded, token, lp, fresh_account, unit, model
):
    vault = seeded
    lp_shares, lp_started = vault.balanceOf(lp), vault.last_deposit_at(lp)
    lp_tokens = token.balanceOf(lp)
    amount = 300 * unit
    q = model.quote_deposit(vault, amount)
    vault.approve_depositor(lp, True, sender=fresh_account)

    tx = vault.deposit(amount, 0, fresh_account, sender=lp)

    assert vault.balanceOf(fresh_account) == q.shares
    assert vault.last_deposit_at(fresh_account) == tx.timestamp
    assert token.balanceOf(lp) == lp_tokens - amount  # the sender pays
    assert token.balanceOf(fresh_account) == 0
    assert vault.balanceOf(lp) == lp_shares
    assert vault.last_deposit_at(lp) == lp_started  # only the receiver's clock restarts
    [log] = tx.decode_logs(vault.Deposit)
    assert (log.sender, log.receiver, log.shares) == (lp.address, fresh_account.address, q.shares)


def test_deposit__for_other_receiver_without_approval__reverts(seeded, lp, fresh_account, unit, snapshot):
    vault = seeded
    before = snapshot()
    with ape.reverts("vault: depositor not approved"):
        vault.deposit(300 * unit, 0, fresh_account, sender=lp)
    assert snapshot() == before


def test_approve_depositor__logs_and_can_be_revoked(seeded, lp, fresh_account, unit):
    vault = seeded
    tx = vault.approve_depositor(lp, True, sender=fresh_account)
    [log] = tx.decode_logs(vault.DepositorApproved)
    assert (log.receiver, log.depositor, log.approved) == (fresh_account.address, lp.address, True)
    assert vault.depositor_approved(fresh_account, lp)
    vault.approve_depositor(lp, False, sender=fresh_account)
    assert not vault.depositor_approved(fresh_account, lp)
    with ape.reverts("vault: depositor not approved"):
        vault.deposit(300 * unit, 0, fresh_account, sender=lp)


def test_deposit__again__restarts_cooldown(seeded, lp, unit, chain):
    vault = seeded
    first = vault.last_deposit_at(lp)
    chain.mine(deltatime=500)
    tx = vault.deposit(unit, 0, lp, sender=lp)
    assert vault.last_deposit_at(lp) == tx.timestamp >= first + 500


@pytest.mark.parametrize("first", [True, False], ids=["first", "later"])
def test_deposit__min_shares_equal_to_result__succeeds(
    request, vault, other_lp, unit, model, first
):
    v = vault if first else request.getfixturevalue("seeded")
    amount = 1_000 * unit + 13
    q = model.quote_deposit(v, amount)
    tx = v.deposit(amount, q.shares, other_lp, sender=other_lp)
    assert tx.return_value == q.shares


# ------------------------------------------------------------------ refusals


def test_deposit__zero_amount__reverts(seeded, lp, snapshot):
    before = snapshot()
    with ape.reverts("vault: zero amount"):
        seeded.deposit(0, 0, lp, sender=lp)
    assert snapshot() == before


def test_deposit__zero_receiver__reverts(seeded, lp, unit, model, snapshot):
    before = snapshot()
    with ape.reverts("vault: zero receiver"):
        seeded.deposit(100 * unit, 0, model.ZERO, sender=lp)
    assert snapshot() == before


def test_deposit__first_just_below_one_dollar_net__reverts(vault, lp, scale, model, snapshot):
    minimum = model.min_first_deposit(model.MINT_FEE_BPS, scale)
    below = minimum - 1
    assert (below - model.fee(below, model.MINT_FEE_BPS)) * scale < model.MIN_FIRST_DEPOSIT
    before = snapshot()
    with ape.reverts("vault: first deposit too small"):
        vault.deposit(below, 0, lp, sender=lp)
    assert snapshot() == before


def test_deposit__first_exactly_one_dollar_net__succeeds(vault, lp, scale, model):
    minimum = model.min_first_deposit(model.MINT_FEE_BPS, scale)
    q = model.quote_deposit(vault, minimum)
    assert q.net_wad >= model.MIN_FIRST_DEPOSIT
    tx = vault.deposit(minimum, 0, lp, sender=lp)
    assert tx.return_value == q.shares == q.net_wad - model.DEAD_SHARES
    assert vault.balanceOf(model.DEAD) == model.DEAD_SHARES


@pytest.mark.parametrize("first", [True, False], ids=["first", "later"])
def test_deposit__min_shares_above_result__reverts_slippage(
    request, vault, other_lp, unit, model, snapshot, first
):
    v = vault if first else request.getfixturevalue("seeded")
    amount = 1_000 * unit + 13
    q = model.quote_deposit(v, amount)
    before = snapshot()
    with ape.reverts("vault: slippage"):
        v.deposit(amount, q.shares + 1, other_lp, sender=other_lp)
    assert snapshot() == before


def test_deposit__dust_eaten_by_fee__reverts_zero_shares(seeded, other_lp, model, snapshot):
    q = model.quote_deposit(seeded, 1)
    assert q.fee == 1 and q.shares == 0  # the fee rounds up to the whole unit
    before = snapshot()
    with ape.reverts("vault: zero shares"):
        seeded.deposit(1, 0, other_lp, sender=other_lp)
    assert snapshot() == before


def test_deposit__without_approval__reverts_and_changes_nothing(
    seeded, token, other_lp, unit, snapshot
):
    token.approve(seeded, 0, sender=other_lp)
    before = snapshot()
    with ape.reverts():
        seeded.deposit(100 * unit, 0, other_lp, sender=other_lp)
    assert snapshot() == before
