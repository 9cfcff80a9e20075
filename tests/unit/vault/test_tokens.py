"""Collateral tokens: decimals 6 to 18, tokens that return nothing, tokens that return false."""

import ape
import pytest

MAX = 2**256 - 1


@pytest.fixture(scope="module")
def decimals():
    return 6  # the shared `vault` fixture is not what this module tests


def settlement(**fields):
    s = {
        "account_in": "0x0000000000000000000000000000000000000000",
        "amount_in": 0,
        "pool_delta": 0,
        "collateral_delta": 0,
        "escrow_delta": 0,
        "insurance_delta": 0,
        "account_out": "0x0000000000000000000000000000000000000000",
        "amount_out": 0,
        "reserved_delta": 0,
        "credit_account": "0x0000000000000000000000000000000000000000",
        "credit_amount": 0,
    }
    s.update({k: getattr(v, "address", v) for k, v in fields.items()})
    return s


@pytest.mark.parametrize("token_decimals", [6, 8, 12, 18])
def test_deploy__supported_decimals__scale_is_wad_per_unit(
    project, deployer, token_decimals, model
):
    token = deployer.deploy(project.TestToken, "USD", "USD", token_decimals)
    vault = deployer.deploy(project.Vault, token, "perpool LP", "PLP")
    assert vault.token() == token.address
    assert vault.token_scale() == 10 ** (18 - token_decimals)
    assert vault.admin() == deployer.address
    assert vault.cooldown() == model.DEFAULT_COOLDOWN
    assert vault.totalSupply() == 0


@pytest.mark.parametrize("token_decimals", [0, 5, 19, 24])
def test_deploy__unsupported_decimals__reverts(project, deployer, token_decimals):
    token = deployer.deploy(project.TestToken, "USD", "USD", token_decimals)
    with ape.reverts("vault: bad token decimals"):
        deployer.deploy(project.Vault, token, "perpool LP", "PLP")


def test_same_dollars__6_and_18_decimals__same_shares_and_payout(
    project, deployer, create_vault, lp, other_lp
):
    """Amounts are converted to WAD USD in one place: a dollar is a dollar at any decimals.
    The same dollars mint the same shares; the payouts differ only by the 6-decimal token's
    coarser rounding (the payout and its fee each round to a whole micro-dollar)."""
    results = []
    for token_decimals in (6, 18):
        unit = 10**token_decimals
        token = deployer.deploy(project.TestToken, "USD", "USD", token_decimals)
        vault = create_vault(token, 30, 30, 0)
        for actor in (lp, other_lp):
            token.mint(actor, 1_000_000 * unit, sender=actor)
            token.approve(vault, MAX, sender=actor)
        vault.deposit(10_000 * unit, 0, lp, sender=lp)
        amount = 1_234 * unit + unit // 2  # $1,234.50
        shares = vault.deposit(amount, 0, other_lp, sender=other_lp).return_value
        paid = vault.redeem(shares, 0, other_lp, sender=other_lp).return_value
        results.append((shares, paid * 10 ** (18 - token_decimals)))
    (shares6, paid6), (shares18, paid18) = results
    assert shares6 == shares18
    assert abs(paid18 - paid6) < 2 * 10**12


# ------------------------------------------------------------------ tokens returning nothing


@pytest.mark.parametrize("token_decimals", [6, 18])
def test_no_return_token__deposit_redeem_settle_insurance__all_work(
    project, deployer, create_vault, lp, trader, controller, model, token_decimals
):
    unit = 10**token_decimals
    token = deployer.deploy(project.TestNoReturnToken, token_decimals)
    vault = create_vault(token, 30, 30, 0)
    vault.set_controller(controller, True, sender=deployer)
    for actor in (lp, trader):
        token.mint(actor, 100_000 * unit, sender=actor)
        token.approve(vault, MAX, sender=actor)

    amount = 10_000 * unit + 7
    q = model.quote_deposit(vault, amount)
    assert vault.deposit(amount, 0, lp, sender=lp).return_value == q.shares
    assert token.balanceOf(vault) == amount

    shares = q.shares // 2
    r = model.quote_redeem(vault, shares)
    assert vault.redeem(shares, 0, lp, sender=lp).return_value == r.amount
    assert token.balanceOf(lp) == 100_000 * unit - amount + r.amount

    vault.settle(
        settlement(account_in=trader, amount_in=500 * unit, collateral_delta=500 * unit),
        sender=controller,
    )
    vault.settle(
        settlement(collateral_delta=-500 * unit, account_out=trader, amount_out=500 * unit),
        sender=controller,
    )
    vault.fund_insurance(3 * unit, sender=trader)
    assert token.balanceOf(trader) == 100_000 * unit - 3 * unit
    assert token.balanceOf(vault) == vault.total_owed() == amount - r.amount + 3 * unit
    assert vault.is_solvent()


# ------------------------------------------------------------------ tokens returning false


@pytest.fixture
def false_setup(project, deployer, create_vault, lp, trader, controller, unit):
    """A vault over TestFalseToken: lp deposited 10,000 tokens, trader has 1,000 of
    collateral in, cooldown zero. The token is not failing yet."""
    token = deployer.deploy(project.TestFalseToken, 6)
    vault = create_vault(token, 30, 30, 0)
    vault.set_controller(controller, True, sender=deployer)
    for actor in (lp, trader):
        token.mint(actor, 100_000 * unit, sender=actor)
        token.approve(vault, MAX, sender=actor)
    vault.deposit(10_000 * unit, 0, lp, sender=lp)
    vault.settle(
        settlement(account_in=trader, amount_in=1_000 * unit, collateral_delta=1_000 * unit),
        sender=controller,
    )
    return vault, token


def test_false_token__not_failing__works(false_setup, lp, model):
    vault, token = false_setup
    shares = vault.balanceOf(lp) // 2
    q = model.quote_redeem(vault, shares)
    assert vault.redeem(shares, 0, lp, sender=lp).return_value == q.amount


def test_false_token__deposit_pull_returns_false__reverts(false_setup, state_of, lp, trader, unit):
    vault, token = false_setup
    token.set_failing(True, sender=lp)
    before = state_of(vault, token, lp, trader)
    with ape.reverts("vault: transfer failed"):
        vault.deposit(1_000 * unit, 0, lp, sender=lp)
    assert state_of(vault, token, lp, trader) == before


def test_false_token__redeem_push_returns_false__reverts(false_setup, state_of, lp, trader):
    vault, token = false_setup
    token.set_failing(True, sender=lp)
    before = state_of(vault, token, lp, trader)
    with ape.reverts("vault: transfer failed"):
        vault.redeem(vault.balanceOf(lp) // 2, 0, lp, sender=lp)
    assert state_of(vault, token, lp, trader) == before


def test_false_token__settle_pull_returns_false__reverts(
    false_setup, state_of, lp, trader, controller, unit
):
    vault, token = false_setup
    token.set_failing(True, sender=lp)
    before = state_of(vault, token, lp, trader)
    with ape.reverts("vault: transfer failed"):
        vault.settle(
            settlement(account_in=trader, amount_in=unit, collateral_delta=unit, reserved_delta=5),
            sender=controller,
        )
    assert state_of(vault, token, lp, trader) == before


def test_false_token__settle_pay_returns_false__reverts(
    false_setup, state_of, lp, trader, controller, unit
):
    vault, token = false_setup
    token.set_failing(True, sender=lp)
    before = state_of(vault, token, lp, trader)
    with ape.reverts("vault: transfer failed"):
        vault.settle(
            settlement(collateral_delta=-unit, account_out=trader, amount_out=unit),
            sender=controller,
        )
    assert state_of(vault, token, lp, trader) == before


def test_false_token__fund_insurance_returns_false__reverts(
    false_setup, state_of, lp, trader, unit
):
    vault, token = false_setup
    token.set_failing(True, sender=lp)
    before = state_of(vault, token, lp, trader)
    with ape.reverts("vault: transfer failed"):
        vault.fund_insurance(unit, sender=trader)
    assert state_of(vault, token, lp, trader) == before
