"""Admin: controllers, pool value source, fees and cooldown bounds, two-step admin transfer."""

import ape
import pytest

ZERO = "0x0000000000000000000000000000000000000000"


@pytest.fixture(scope="module")
def decimals():
    return 6  # admin settings do not depend on the collateral's decimals


def test_deploy__sets_admin_and_default_cooldown_with_events(project, deployer, token, model):
    vault = deployer.deploy(project.Vault, token, "perpool LP", "PLP")
    assert vault.admin() == deployer.address
    assert vault.pending_admin() == ZERO
    assert vault.cooldown() == model.DEFAULT_COOLDOWN
    assert (vault.mint_fee_bps(), vault.burn_fee_bps()) == (0, 0)
    assert vault.pool_value_source() == ZERO
    receipt = vault.creation_metadata.receipt
    [admin_log] = receipt.decode_logs(vault.AdminTransferred)
    assert (admin_log.previous_admin, admin_log.admin) == (ZERO, deployer.address)
    [cooldown_log] = receipt.decode_logs(vault.CooldownSet)
    assert cooldown_log.cooldown == model.DEFAULT_COOLDOWN


# ------------------------------------------------------------------ controllers


def test_set_controller__authorise_and_revoke__logged(vault, deployer, keeper):
    assert not vault.controllers(keeper)
    tx = vault.set_controller(keeper, True, sender=deployer)
    assert vault.controllers(keeper)
    [log] = tx.decode_logs(vault.ControllerSet)
    assert (log.controller, log.allowed) == (keeper.address, True)

    tx = vault.set_controller(keeper, False, sender=deployer)
    assert not vault.controllers(keeper)
    [log] = tx.decode_logs(vault.ControllerSet)
    assert (log.controller, log.allowed) == (keeper.address, False)


def test_set_controller__zero_address__reverts(vault, deployer, snapshot):
    before = snapshot()
    with ape.reverts("vault: zero address"):
        vault.set_controller(ZERO, True, sender=deployer)
    assert snapshot() == before
    assert not vault.controllers(ZERO)


# ------------------------------------------------------------------ pool value source


def test_set_pool_value_source__set_and_clear__logged(vault, deployer, pool_value_source):
    tx = vault.set_pool_value_source(pool_value_source, sender=deployer)
    assert vault.pool_value_source() == pool_value_source.address
    [log] = tx.decode_logs(vault.PoolValueSourceSet)
    assert log.source == pool_value_source.address

    tx = vault.set_pool_value_source(ZERO, sender=deployer)
    assert vault.pool_value_source() == ZERO
    [log] = tx.decode_logs(vault.PoolValueSourceSet)
    assert log.source == ZERO


# ------------------------------------------------------------------ fees and cooldown


def test_set_fees__at_the_bound__accepted_and_logged(vault, deployer, model):
    fees = (model.MAX_FEE_BPS, model.MAX_FEE_BPS - 1)
    tx = vault.set_fees(*fees, sender=deployer)
    assert (vault.mint_fee_bps(), vault.burn_fee_bps()) == fees
    [log] = tx.decode_logs(vault.FeesSet)
    assert (log.mint_fee_bps, log.burn_fee_bps) == fees


def test_set_fees__to_zero__accepted(vault, deployer):
    vault.set_fees(0, 0, sender=deployer)
    assert (vault.mint_fee_bps(), vault.burn_fee_bps()) == (0, 0)


@pytest.mark.parametrize("which", ["mint", "burn", "both"])
def test_set_fees__above_the_bound__reverts(vault, deployer, model, snapshot, which):
    too_high = model.MAX_FEE_BPS + 1
    mint = too_high if which in ("mint", "both") else 0
    burn = too_high if which in ("burn", "both") else 0
    before = snapshot()
    with ape.reverts("vault: fee too high"):
        vault.set_fees(mint, burn, sender=deployer)
    assert snapshot() == before


def test_set_cooldown__at_the_bound__accepted_and_logged(vault, deployer, model):
    tx = vault.set_cooldown(model.MAX_COOLDOWN, sender=deployer)
    assert vault.cooldown() == model.MAX_COOLDOWN
    [log] = tx.decode_logs(vault.CooldownSet)
    assert log.cooldown == model.MAX_COOLDOWN


def test_set_cooldown__above_the_bound__reverts(vault, deployer, model, snapshot):
    before = snapshot()
    with ape.reverts("vault: cooldown too long"):
        vault.set_cooldown(model.MAX_COOLDOWN + 1, sender=deployer)
    assert snapshot() == before


def test_set_cooldown__applies_to_running_cooldowns(vault, deployer, lp, unit, model):
    vault.deposit(1_000 * unit, 0, lp, sender=lp)
    with ape.reverts("vault: cooldown"):
        vault.redeem(10**18, 0, lp, sender=lp)
    vault.set_cooldown(0, sender=deployer)
    q = model.quote_redeem(vault, 10**18)
    assert vault.redeem(10**18, 0, lp, sender=lp).return_value == q.amount


# ------------------------------------------------------------------ not admin


ADMIN_CALLS = {
    "set_controller": lambda f: ("set_controller", (f["attacker"], True)),
    "set_pool_value_source": lambda f: ("set_pool_value_source", (f["attacker"],)),
    "set_fees": lambda f: ("set_fees", (0, 0)),
    "set_cooldown": lambda f: ("set_cooldown", (0,)),
    "transfer_admin": lambda f: ("transfer_admin", (f["attacker"],)),
}


@pytest.mark.parametrize("call", list(ADMIN_CALLS))
@pytest.mark.parametrize("caller", ["attacker", "controller"])
def test_admin_function__not_admin__reverts(request, vault, snapshot, call, caller):
    actors = {name: request.getfixturevalue(name) for name in ("attacker", "controller")}
    name, args = ADMIN_CALLS[call](actors)
    before = snapshot()
    with ape.reverts("vault: not admin"):
        getattr(vault, name)(*args, sender=actors[caller])
    assert snapshot() == before
    assert not vault.controllers(actors["attacker"])


# ------------------------------------------------------------------ two-step admin


def test_transfer_admin__nominates_without_handing_over(vault, deployer, new_admin):
    tx = vault.transfer_admin(new_admin, sender=deployer)
    assert vault.pending_admin() == new_admin.address
    assert vault.admin() == deployer.address  # still in charge until accepted
    [log] = tx.decode_logs(vault.AdminTransferStarted)
    assert (log.admin, log.pending_admin) == (deployer.address, new_admin.address)
    vault.set_cooldown(1, sender=deployer)
    with ape.reverts("vault: not admin"):
        vault.set_cooldown(2, sender=new_admin)


def test_accept_admin__by_nominee__hands_over_and_logs(vault, deployer, new_admin, keeper):
    vault.transfer_admin(new_admin, sender=deployer)
    tx = vault.accept_admin(sender=new_admin)
    assert vault.admin() == new_admin.address
    assert vault.pending_admin() == ZERO
    [log] = tx.decode_logs(vault.AdminTransferred)
    assert (log.previous_admin, log.admin) == (deployer.address, new_admin.address)
    # the new admin has the rights, the previous one lost them
    vault.set_controller(keeper, True, sender=new_admin)
    assert vault.controllers(keeper)
    with ape.reverts("vault: not admin"):
        vault.set_fees(0, 0, sender=deployer)


@pytest.mark.parametrize("caller", ["attacker", "deployer"])
def test_accept_admin__not_nominee__reverts(
    request, vault, deployer, new_admin, snapshot, caller
):
    vault.transfer_admin(new_admin, sender=deployer)
    before = snapshot()
    with ape.reverts("vault: not pending admin"):
        vault.accept_admin(sender=request.getfixturevalue(caller))
    assert snapshot() == before


def test_accept_admin__nobody_nominated__reverts(vault, attacker, snapshot):
    before = snapshot()
    with ape.reverts("vault: not pending admin"):
        vault.accept_admin(sender=attacker)
    assert snapshot() == before


def test_accept_admin__twice__second_reverts(vault, deployer, new_admin, snapshot):
    vault.transfer_admin(new_admin, sender=deployer)
    vault.accept_admin(sender=new_admin)
    before = snapshot()
    with ape.reverts("vault: not pending admin"):
        vault.accept_admin(sender=new_admin)
    assert snapshot() == before


def test_transfer_admin__renominated__replaces_the_first_nominee(
    vault, deployer, new_admin, keeper, snapshot
):
    vault.transfer_admin(new_admin, sender=deployer)
    vault.transfer_admin(keeper, sender=deployer)
    before = snapshot()
    with ape.reverts("vault: not pending admin"):
        vault.accept_admin(sender=new_admin)
    assert snapshot() == before
    vault.accept_admin(sender=keeper)
    assert vault.admin() == keeper.address


def test_transfer_admin__to_zero__cancels_the_nomination(
    vault, deployer, new_admin, snapshot
):
    vault.transfer_admin(new_admin, sender=deployer)
    tx = vault.transfer_admin(ZERO, sender=deployer)
    [log] = tx.decode_logs(vault.AdminTransferStarted)
    assert log.pending_admin == ZERO
    before = snapshot()
    with ape.reverts("vault: not pending admin"):
        vault.accept_admin(sender=new_admin)
    assert snapshot() == before
    assert vault.admin() == deployer.address
