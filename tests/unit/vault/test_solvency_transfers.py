"""The Vault's on-chain solvency check (issue #8), made inductive: the buckets change only by
balanced flows (`settle` asserts it), so if every token transfer moves the Vault's balance
by exactly the amount booked, balance - total_owed never falls. `_pull` and `_push` check
that and refuse with "vault: insolvent" otherwise. A fee-on-transfer token (contracts/test/
TestFeeToken.vy: 1 % burnt, from what the receiver gets or charged to the sender on top)
trips it on every path that moves tokens; with the fee off, the same calls pass. A `settle`
that moves no token makes no call and needs no check."""

import ape
import pytest

MAX = 2**256 - 1
ZERO = "0x0000000000000000000000000000000000000000"


def settlement(**fields):
    s = dict(account_in=ZERO, amount_in=0, pool_delta=0, collateral_delta=0, escrow_delta=0, insurance_delta=0,
             account_out=ZERO, amount_out=0, reserved_delta=0, credit_account=ZERO, credit_amount=0)
    s.update({k: getattr(v, "address", v) for k, v in fields.items()})
    return s


@pytest.fixture
def fee_vault(project, deployer, create_vault, lp, trader, controller, unit, chain):
    """A Vault on the fee token: lp deposited $10,000 (fee off), trader has collateral in
    it and a claimable credit, the insurance fund holds $500; then the fee is turned on."""
    token = deployer.deploy(project.TestFeeToken, 6)
    vault = create_vault(token, 30, 30, 0)
    vault.set_controller(controller, True, sender=deployer)
    for actor in (lp, trader):
        token.mint(actor, 100_000 * unit, sender=actor)
        token.approve(vault, MAX, sender=actor)
    vault.deposit(10_000 * unit, 0, lp, sender=lp)
    vault.fund_insurance(500 * unit, sender=trader)
    vault.settle(settlement(account_in=trader, amount_in=1_000 * unit, collateral_delta=900 * unit,
                            credit_account=trader, credit_amount=100 * unit), sender=controller)
    return vault, token


def state(vault, token, *actors):
    return (
        token.balanceOf(vault), vault.total_owed(), vault.pool_amount(), vault.collateral_amount(),
        vault.insurance_amount(), vault.totalSupply(),
        tuple((token.balanceOf(a), vault.balanceOf(a), vault.claimable(a)) for a in actors),
    )


CALLS = {
    # receiver-side fee: the Vault receives less than it books
    "deposit": ("receiver", lambda v, lp, tr, c, u: v.deposit(1_000 * u, 0, lp, sender=lp)),
    "fund_insurance": ("receiver", lambda v, lp, tr, c, u: v.fund_insurance(100 * u, sender=tr)),
    "settle_pull": ("receiver", lambda v, lp, tr, c, u: v.settle(
        settlement(account_in=tr, amount_in=100 * u, collateral_delta=100 * u), sender=c)),
    # sender-side fee: the Vault pays out more than it books
    "redeem": ("sender", lambda v, lp, tr, c, u: v.redeem(v.balanceOf(lp) // 10, 0, lp, sender=lp)),
    "claim": ("sender", lambda v, lp, tr, c, u: v.claim(tr, sender=tr)),
    "settle_push": ("sender", lambda v, lp, tr, c, u: v.settle(
        settlement(account_out=tr, amount_out=100 * u, collateral_delta=-100 * u), sender=c)),
}


@pytest.mark.parametrize("case", list(CALLS))
def test_transfer__fee_on_transfer_token__refused_insolvent(fee_vault, lp, trader, controller, unit, deployer, case):
    vault, token = fee_vault
    side, call = CALLS[case]
    token.set_fee_on(True, sender=deployer)
    token.set_sender_pays(side == "sender", sender=deployer)
    before = state(vault, token, lp, trader)
    with ape.reverts("vault: insolvent"):
        call(vault, lp, trader, controller, unit)
    assert state(vault, token, lp, trader) == before
    assert vault.is_solvent()


@pytest.mark.parametrize("case", list(CALLS))
def test_transfer__plain_token__passes_and_stays_solvent(fee_vault, lp, trader, controller, unit, case):
    """The positive control: the same calls with the fee off."""
    vault, token = fee_vault
    _, call = CALLS[case]
    surplus = token.balanceOf(vault) - vault.total_owed()
    call(vault, lp, trader, controller, unit)
    assert token.balanceOf(vault) - vault.total_owed() == surplus


def test_settle__no_token_moves__no_transfer_no_check(fee_vault, controller, unit, deployer):
    vault, token = fee_vault
    token.set_fee_on(True, sender=deployer)
    owed = vault.total_owed()
    vault.settle(settlement(pool_delta=-1 * unit, insurance_delta=1 * unit), sender=controller)
    assert vault.total_owed() == owed and vault.is_solvent()
