"""LP shares as an ERC-20: transfer, approve, transferFrom, and the cooldown on transfers."""

import ape
import pytest

MAX = 2**256 - 1


@pytest.fixture(scope="module")
def decimals():
    return 6  # share accounting does not depend on the collateral's decimals


@pytest.fixture
def holders(vault, lp, other_lp, unit, pass_cooldown):
    """lp and other_lp hold shares, their cooldowns over."""
    vault.deposit(10_000 * unit + 17, 0, lp, sender=lp)
    vault.deposit(3_000 * unit + 5, 0, other_lp, sender=other_lp)
    pass_cooldown()
    return vault


def test_metadata__name_symbol_decimals(vault):
    assert vault.name() == "perpool LP"
    assert vault.symbol() == "PLP"
    assert vault.decimals() == 18


def test_transfer__after_cooldown__moves_shares_and_logs(holders, lp, other_lp, logs_of):
    vault = holders
    lp_shares, other_shares, supply = (
        vault.balanceOf(lp),
        vault.balanceOf(other_lp),
        vault.totalSupply(),
    )
    amount = lp_shares // 3

    tx = vault.transfer(other_lp, amount, sender=lp)

    assert tx.return_value is True
    assert vault.balanceOf(lp) == lp_shares - amount
    assert vault.balanceOf(other_lp) == other_shares + amount
    assert vault.totalSupply() == supply
    [log] = logs_of(tx, vault.Transfer, vault)
    assert (log.sender, log.receiver, log.value) == (lp.address, other_lp.address, amount)


def test_transfer__whole_balance__succeeds(holders, lp, fresh_account):
    shares = holders.balanceOf(lp)
    holders.transfer(fresh_account, shares, sender=lp)
    assert holders.balanceOf(lp) == 0
    assert holders.balanceOf(fresh_account) == shares


def test_transfer__to_self__keeps_balance(holders, lp):
    shares = holders.balanceOf(lp)
    holders.transfer(lp, shares, sender=lp)
    assert holders.balanceOf(lp) == shares


def test_transfer__zero_amount__succeeds(holders, attacker, lp):
    tx = holders.transfer(lp, 0, sender=attacker)
    assert tx.return_value is True
    assert holders.balanceOf(attacker) == 0


def test_transfer__received_shares__start_no_cooldown(holders, lp, fresh_account, model):
    """Shares that served their cooldown stay redeemable after a transfer."""
    vault = holders
    amount = vault.balanceOf(lp) // 2
    vault.transfer(fresh_account, amount, sender=lp)
    assert vault.last_deposit_at(fresh_account) == 0
    q = model.quote_redeem(vault, amount)
    assert vault.redeem(amount, 0, fresh_account, sender=fresh_account).return_value == q.amount


def test_approve__sets_allowance_and_logs(holders, lp, other_lp, logs_of):
    tx = holders.approve(other_lp, 12345, sender=lp)
    assert tx.return_value is True
    assert holders.allowance(lp, other_lp) == 12345
    [log] = logs_of(tx, holders.Approval, holders)
    assert (log.owner, log.spender, log.value) == (lp.address, other_lp.address, 12345)
    holders.approve(other_lp, 7, sender=lp)  # overwrites, does not add
    assert holders.allowance(lp, other_lp) == 7


def test_approve__during_cooldown__allowed(vault, lp, other_lp, unit):
    vault.deposit(1_000 * unit, 0, lp, sender=lp)
    vault.approve(other_lp, 1, sender=lp)
    assert vault.allowance(lp, other_lp) == 1


def test_transfer_from__spends_allowance_and_moves_shares(
    holders, lp, other_lp, fresh_account, logs_of
):
    vault = holders
    lp_shares, spender_shares = vault.balanceOf(lp), vault.balanceOf(other_lp)
    vault.approve(other_lp, 1_000, sender=lp)

    tx = vault.transferFrom(lp, fresh_account, 400, sender=other_lp)

    assert tx.return_value is True
    assert vault.allowance(lp, other_lp) == 600
    assert vault.balanceOf(lp) == lp_shares - 400
    assert vault.balanceOf(fresh_account) == 400
    assert vault.balanceOf(other_lp) == spender_shares  # the spender's own shares untouched
    [log] = logs_of(tx, vault.Transfer, vault)
    assert (log.sender, log.receiver, log.value) == (lp.address, fresh_account.address, 400)


def test_transfer_from__exact_allowance__leaves_zero(holders, lp, other_lp):
    holders.approve(other_lp, 500, sender=lp)
    holders.transferFrom(lp, other_lp, 500, sender=other_lp)
    assert holders.allowance(lp, other_lp) == 0


def test_transfer_from__infinite_allowance__is_not_spent(holders, lp, other_lp):
    holders.approve(other_lp, MAX, sender=lp)
    holders.transferFrom(lp, other_lp, holders.balanceOf(lp) // 2, sender=other_lp)
    assert holders.allowance(lp, other_lp) == MAX


# ------------------------------------------------------------------ refusals


def test_transfer__zero_receiver__reverts(holders, lp, model, snapshot):
    before = snapshot()
    with ape.reverts("vault: zero receiver"):
        holders.transfer(model.ZERO, 1, sender=lp)
    assert snapshot() == before


def test_transfer__more_than_balance__reverts(holders, lp, other_lp, snapshot):
    before = snapshot()
    with ape.reverts("vault: insufficient shares"):
        holders.transfer(other_lp, holders.balanceOf(lp) + 1, sender=lp)
    assert snapshot() == before


def test_transfer_from__above_allowance__reverts(holders, lp, attacker, snapshot):
    holders.approve(attacker, 100, sender=lp)
    pairs = [(lp, attacker)]
    before = snapshot(allowances=pairs)
    with ape.reverts("vault: insufficient allowance"):
        holders.transferFrom(lp, attacker, 101, sender=attacker)
    assert snapshot(allowances=pairs) == before


def test_transfer_from__without_allowance__reverts(holders, lp, attacker, snapshot):
    before = snapshot(allowances=[(lp, attacker)])
    with ape.reverts("vault: insufficient allowance"):
        holders.transferFrom(lp, attacker, 1, sender=attacker)
    assert snapshot(allowances=[(lp, attacker)]) == before


def test_transfer_from__more_than_owner_balance__reverts(holders, lp, other_lp, snapshot):
    holders.approve(other_lp, MAX, sender=lp)
    pairs = [(lp, other_lp)]
    before = snapshot(allowances=pairs)
    with ape.reverts("vault: insufficient shares"):
        holders.transferFrom(lp, other_lp, holders.balanceOf(lp) + 1, sender=other_lp)
    assert snapshot(allowances=pairs) == before


def test_transfer_from__zero_receiver__reverts(holders, lp, other_lp, model, snapshot):
    holders.approve(other_lp, 10, sender=lp)
    pairs = [(lp, other_lp)]
    before = snapshot(allowances=pairs)
    with ape.reverts("vault: zero receiver"):
        holders.transferFrom(lp, model.ZERO, 10, sender=other_lp)
    assert snapshot(allowances=pairs) == before


# ------------------------------------------------------------------ cooldown


def test_transfer__during_cooldown__reverts(vault, lp, other_lp, unit, snapshot):
    vault.deposit(1_000 * unit, 0, lp, sender=lp)
    before = snapshot()
    with ape.reverts("vault: cooldown"):
        vault.transfer(other_lp, 1, sender=lp)
    assert snapshot() == before


def test_transfer__after_new_deposit__cooldown_covers_old_shares(
    holders, lp, other_lp, unit, snapshot
):
    holders.deposit(unit, 0, lp, sender=lp)
    before = snapshot()
    with ape.reverts("vault: cooldown"):
        holders.transfer(other_lp, 1, sender=lp)
    assert snapshot() == before


def test_transfer_from__during_owner_cooldown__reverts(vault, lp, other_lp, unit, snapshot):
    """A spender cannot move the shares out either."""
    vault.deposit(1_000 * unit, 0, lp, sender=lp)
    vault.approve(other_lp, MAX, sender=lp)
    pairs = [(lp, other_lp)]
    before = snapshot(allowances=pairs)
    with ape.reverts("vault: cooldown"):
        vault.transferFrom(lp, other_lp, 1, sender=other_lp)
    assert snapshot(allowances=pairs) == before


def test_cooldown__transfer_to_fresh_account__cannot_bypass_it(
    vault, lp, fresh_account, unit, snapshot
):
    """Fresh shares cannot reach an account without a cooldown, so they cannot be redeemed
    early from there."""
    vault.deposit(1_000 * unit, 0, lp, sender=lp)
    before = snapshot()
    with ape.reverts("vault: cooldown"):
        vault.transfer(fresh_account, vault.balanceOf(lp), sender=lp)
    assert snapshot() == before


def test_cooldown__deposit_for_fresh_account__starts_its_cooldown(
    vault, lp, fresh_account, other_lp, unit, snapshot
):
    """Depositing straight into a fresh account does not bypass it either: the receiver's
    clock starts, for its redeem and for its transfers."""
    vault.approve_depositor(lp, True, sender=fresh_account)
    vault.deposit(1_000 * unit, 0, fresh_account, sender=lp)
    shares = vault.balanceOf(fresh_account)
    before = snapshot()
    with ape.reverts("vault: cooldown"):
        vault.redeem(shares, 0, fresh_account, sender=fresh_account)
    with ape.reverts("vault: cooldown"):
        vault.transfer(other_lp, shares, sender=fresh_account)
    assert snapshot() == before


def test_cooldown__over__transfer_allowed(vault, lp, other_lp, unit, chain):
    tx = vault.deposit(1_000 * unit, 0, lp, sender=lp)
    held, received = vault.balanceOf(lp), vault.balanceOf(other_lp)
    chain.pending_timestamp = tx.timestamp + vault.cooldown()
    vault.transfer(other_lp, 10, sender=lp)
    assert (vault.balanceOf(lp), vault.balanceOf(other_lp)) == (held - 10, received + 10)
