"""Vault pause (pauser role, deposits refused, redemptions open) and the insurance fund's
target and withdrawals.

Vault.vy: `set_paused` is the admin's or the pauser's (the Configurator in a deploy);
while paused `deposit` reverts "vault: paused" and redemptions, settlements and insurance
top-ups go on. `withdraw_insurance` (admin only) takes only what exceeds
`insurance_target`: the fund may end exactly at the target, never below it.
"""

import ape
import pytest

ZERO = "0x0000000000000000000000000000000000000000"


# ------------------------------------------------------------------ helpers


def full_state(snapshot, vault) -> dict:
    """The conftest snapshot plus the pause and insurance settings and solvency."""
    state = snapshot()
    state.update(
        paused=vault.paused(),
        pauser=vault.pauser(),
        insurance_target=vault.insurance_target(),
        total_owed=vault.total_owed(),
        solvent=vault.is_solvent(),
    )
    return state


def refused(snapshot, vault, reason, call, *args, **kwargs) -> None:
    """`call` reverts with exactly `reason` and changes nothing."""
    before = full_state(snapshot, vault)
    with ape.reverts(reason):
        call(*args, **kwargs)
    assert full_state(snapshot, vault) == before


def buckets(vault) -> tuple:
    return (
        vault.pool_amount(),
        vault.collateral_amount(),
        vault.escrow_amount(),
        vault.insurance_amount(),
        vault.reserved_amount(),
    )


@pytest.fixture
def pooled(vault, lp, unit, pass_cooldown):
    """An LP in the pool (an odd amount), cooldown over."""
    vault.deposit(100_000 * unit + unit // 7, 0, lp, sender=lp)
    pass_cooldown()
    return vault


@pytest.fixture
def insured(pooled, settle, trader, other_lp, unit):
    """A pool with a trader's collateral, a reserve and an insurance fund topped up both
    ways: a direct `fund_insurance` and a settlement's insurance cut. Returns the fund."""
    vault = pooled
    collateral, cut = 1_500 * unit + 3, 4 * unit + 1
    settle(
        account_in=trader, amount_in=collateral, collateral_delta=collateral - cut,
        insurance_delta=cut, reserved_delta=20_000 * unit + 1,
    )
    vault.fund_insurance(5_000 * unit + 11, sender=other_lp)
    fund = cut + 5_000 * unit + 11
    assert vault.insurance_amount() == fund
    return fund


# ------------------------------------------------------------------ pauser and pause


def test_deploy__unpaused_no_pauser_zero_target(project, deployer, token):
    vault = deployer.deploy(project.Vault, token, "perpool LP", "PLP")
    assert (vault.paused(), vault.pauser(), vault.insurance_target()) == (False, ZERO, 0)


def test_set_pauser__admin__set_cleared_and_logged(vault, deployer, keeper):
    tx = vault.set_pauser(keeper, sender=deployer)
    assert vault.pauser() == keeper.address
    assert [log.pauser for log in tx.decode_logs(vault.PauserSet)] == [keeper.address]
    tx = vault.set_pauser(ZERO, sender=deployer)
    assert vault.pauser() == ZERO
    assert [log.pauser for log in tx.decode_logs(vault.PauserSet)] == [ZERO]


@pytest.mark.parametrize("who", ["attacker", "pauser"])
def test_set_pauser__not_admin__refused(vault, deployer, keeper, attacker, snapshot, who):
    vault.set_pauser(keeper, sender=deployer)
    sender = {"attacker": attacker, "pauser": keeper}[who]
    refused(snapshot, vault, "vault: not admin", vault.set_pauser, sender, sender=sender)


def test_set_paused__admin__pauses_and_unpauses_logged(vault, deployer):
    tx = vault.set_paused(True, sender=deployer)
    assert vault.paused()
    [log] = tx.decode_logs(vault.PausedSet)
    assert (log.account, bool(log.paused)) == (deployer.address, True)
    tx = vault.set_paused(False, sender=deployer)
    assert not vault.paused()
    [log] = tx.decode_logs(vault.PausedSet)
    assert (log.account, bool(log.paused)) == (deployer.address, False)


def test_set_paused__pauser__pauses_and_unpauses_logged(vault, deployer, keeper):
    vault.set_pauser(keeper, sender=deployer)
    tx = vault.set_paused(True, sender=keeper)
    assert vault.paused()
    [log] = tx.decode_logs(vault.PausedSet)
    assert (log.account, bool(log.paused)) == (keeper.address, True)
    tx = vault.set_paused(False, sender=keeper)  # unlike the Configurator, the Vault lets it
    assert not vault.paused()
    [log] = tx.decode_logs(vault.PausedSet)
    assert (log.account, bool(log.paused)) == (keeper.address, False)


@pytest.mark.parametrize("paused", [True, False])
def test_set_paused__stranger_or_former_pauser__refused(
    vault, deployer, keeper, attacker, snapshot, paused
):
    vault.set_paused(not paused, sender=deployer)
    refused(snapshot, vault, "vault: not pauser", vault.set_paused, paused, sender=attacker)
    vault.set_pauser(keeper, sender=deployer)
    vault.set_pauser(ZERO, sender=deployer)
    refused(snapshot, vault, "vault: not pauser", vault.set_paused, paused, sender=keeper)


def test_deposit__paused__refused_state_unchanged(pooled, deployer, lp, other_lp, unit, snapshot):
    vault = pooled
    vault.approve_depositor(other_lp, True, sender=lp)
    vault.set_paused(True, sender=deployer)
    refused(snapshot, vault, "vault: paused", vault.deposit, 500 * unit, 0, lp, sender=lp)
    refused(snapshot, vault, "vault: paused", vault.deposit, 1, 0, other_lp, sender=other_lp)
    refused(snapshot, vault, "vault: paused", vault.deposit, 500 * unit, 0, lp, sender=other_lp)


def test_deposit__first_deposit_while_paused__refused(vault, deployer, lp, unit, snapshot):
    vault.set_paused(True, sender=deployer)
    refused(snapshot, vault, "vault: paused", vault.deposit, 1_000 * unit, 0, lp, sender=lp)
    assert vault.totalSupply() == 0


def test_deposit__unpaused_again__mints_model_shares(
    pooled, deployer, other_lp, token, unit, model
):
    vault = pooled
    vault.set_paused(True, sender=deployer)
    vault.set_paused(False, sender=deployer)
    amount = 2_500 * unit + 9
    q = model.quote_deposit(vault, amount)
    tokens = token.balanceOf(other_lp)
    tx = vault.deposit(amount, 0, other_lp, sender=other_lp)
    assert tx.return_value == q.shares == vault.balanceOf(other_lp)
    assert token.balanceOf(other_lp) == tokens - amount


def test_redeem__paused__still_pays_model_amount(pooled, deployer, keeper, lp, token, model):
    vault = pooled
    vault.set_pauser(keeper, sender=deployer)
    vault.set_paused(True, sender=keeper)
    shares = vault.balanceOf(lp) // 3
    q = model.quote_redeem(vault, shares)
    pool, supply, tokens = vault.pool_amount(), vault.totalSupply(), token.balanceOf(lp)

    tx = vault.redeem(shares, 0, lp, sender=lp)

    assert tx.return_value == q.amount
    assert token.balanceOf(lp) == tokens + q.amount
    assert (vault.pool_amount(), vault.totalSupply()) == (pool - q.amount, supply - shares)
    assert vault.paused() and vault.is_solvent()


def test_settle_and_fund_insurance__paused__still_go_through(
    pooled, deployer, settle, trader, other_lp, unit
):
    vault = pooled
    vault.set_paused(True, sender=deployer)
    pool, collateral, escrow, insurance, reserved = buckets(vault)
    amount = 700 * unit
    settle(account_in=trader, amount_in=amount, collateral_delta=amount - 3, insurance_delta=3)
    vault.fund_insurance(50 * unit, sender=other_lp)
    assert buckets(vault) == (
        pool, collateral + amount - 3, escrow, insurance + 3 + 50 * unit, reserved
    )
    assert vault.is_solvent()


# ------------------------------------------------------------------ insurance target


def test_set_insurance_target__admin__set_changed_and_logged(vault, deployer, unit):
    for target in (1_234 * unit + 5, 0):
        tx = vault.set_insurance_target(target, sender=deployer)
        assert vault.insurance_target() == target
        assert [log.target for log in tx.decode_logs(vault.InsuranceTargetSet)] == [target]


@pytest.mark.parametrize("who", ["attacker", "pauser"])
def test_set_insurance_target__not_admin__refused(vault, deployer, keeper, attacker, snapshot, who):
    vault.set_pauser(keeper, sender=deployer)
    sender = {"attacker": attacker, "pauser": keeper}[who]
    refused(snapshot, vault, "vault: not admin", vault.set_insurance_target, 1, sender=sender)


# ------------------------------------------------------------------ withdraw_insurance


def test_withdraw_insurance__down_to_exactly_the_target__moves_tokens_and_bucket(
    insured, vault, deployer, token, fresh_account, unit, logs_of
):
    fund = insured
    target = fund - (1_234 * unit + 5)
    vault.set_insurance_target(target, sender=deployer)
    amount = fund - target
    pool, collateral, escrow, _, reserved = buckets(vault)
    owed, vault_tokens = vault.total_owed(), token.balanceOf(vault)
    receiver_tokens = token.balanceOf(fresh_account)
    assert vault_tokens == owed  # no donation: the balance is exactly what is owed

    tx = vault.withdraw_insurance(amount, fresh_account, sender=deployer)

    assert buckets(vault) == (pool, collateral, escrow, target, reserved)
    assert token.balanceOf(fresh_account) == receiver_tokens + amount
    assert token.balanceOf(vault) == vault_tokens - amount == vault.total_owed() == owed - amount
    assert vault.is_solvent()
    [log] = tx.decode_logs(vault.InsuranceWithdrawn)
    assert (log.receiver, log.amount) == (fresh_account.address, amount)
    [move] = logs_of(tx, token.Transfer, token)
    assert (move.sender, move.receiver) == (vault.address, fresh_account.address)
    assert move.value == amount


def test_withdraw_insurance__one_unit_past_target__refused(
    insured, vault, deployer, fresh_account, unit, snapshot
):
    fund = insured
    target = fund - (1_234 * unit + 5)
    vault.set_insurance_target(target, sender=deployer)
    refused(
        snapshot, vault, "vault: insurance below target",
        vault.withdraw_insurance, fund - target + 1, fresh_account, sender=deployer,
    )


def test_withdraw_insurance__zero_target__whole_fund_then_nothing_more(
    insured, vault, deployer, fresh_account, token, snapshot
):
    fund = insured
    receiver_tokens = token.balanceOf(fresh_account)
    vault.withdraw_insurance(fund, fresh_account, sender=deployer)
    assert vault.insurance_amount() == 0
    assert token.balanceOf(fresh_account) == receiver_tokens + fund
    assert vault.is_solvent()
    refused(
        snapshot, vault, "vault: insurance below target",
        vault.withdraw_insurance, 1, fresh_account, sender=deployer,
    )


def test_withdraw_insurance__more_than_the_fund__refused_reserve_untouched(
    insured, vault, deployer, fresh_account, snapshot
):
    fund = insured
    reserved = vault.reserved_amount()
    refused(
        snapshot, vault, "vault: insurance below target",
        vault.withdraw_insurance, fund + 1, fresh_account, sender=deployer,
    )
    assert vault.reserved_amount() == reserved


def test_withdraw_insurance__target_above_fund__nothing_withdrawable(
    insured, vault, deployer, fresh_account, snapshot
):
    fund = insured
    vault.set_insurance_target(fund + 1, sender=deployer)
    refused(
        snapshot, vault, "vault: insurance below target",
        vault.withdraw_insurance, 1, fresh_account, sender=deployer,
    )


@pytest.mark.parametrize("who", ["attacker", "pauser", "controller"])
def test_withdraw_insurance__not_admin__refused(
    insured, vault, deployer, keeper, attacker, controller, snapshot, who
):
    vault.set_pauser(keeper, sender=deployer)
    sender = {"attacker": attacker, "pauser": keeper, "controller": controller}[who]
    refused(snapshot, vault, "vault: not admin", vault.withdraw_insurance, 1, sender, sender=sender)


def test_withdraw_insurance__zero_amount_or_receiver__refused(
    insured, vault, deployer, fresh_account, snapshot
):
    withdraw = vault.withdraw_insurance
    refused(snapshot, vault, "vault: zero amount", withdraw, 0, fresh_account, sender=deployer)
    refused(snapshot, vault, "vault: zero receiver", withdraw, 1, ZERO, sender=deployer)
