"""Vault credits and claims: a keeper's fee is credited by `settle`, not transferred, and the
keeper pulls it with `claim`.

Vault.vy, restated:
    settle      pool_delta + collateral_delta + escrow_delta + insurance_delta
                    == amount_in - amount_out - credit_amount   ("vault: unbalanced settlement")
                credit_amount != 0 needs credit_account != 0     ("vault: zero account")
                claimable[credit_account] += credit_amount;  claimable_amount += credit_amount
                Settled(..., credited=credit_amount); no token moves for the credit
    claim       receiver != 0 ("vault: zero receiver"); claimable[caller] != 0 ("vault: nothing
                to claim"); pays the caller's whole balance to `receiver`, zeroes it,
                claimable_amount -= it, logs Claimed(account, receiver, amount); never paused
    total_owed  pool + collateral + escrow + insurance + claimable  (<= the token balance)

Every test runs with 6- and 18-decimal tokens (the conftest's `decimals`). The reentrancy and
false-return cases deploy their own Vault over a special token (6 decimals).
"""

import ape
import pytest
from eth_abi import decode as abi_decode
from perpool.events import settled as decode_settled

ZERO = "0x0000000000000000000000000000000000000000"
MAX = 2**256 - 1
ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)


def owed(vault) -> int:
    return (
        vault.pool_amount()
        + vault.collateral_amount()
        + vault.escrow_amount()
        + vault.insurance_amount()
        + vault.claimable_amount()
    )


def assert_solvent(vault, token) -> None:
    assert vault.total_owed() == owed(vault) == token.balanceOf(vault)
    assert vault.is_solvent()


def refused(snapshot, reason, call, *args, **kwargs) -> None:
    """`call` reverts with exactly `reason` and changes nothing (the conftest snapshot holds
    every bucket, claimable included, and each actor's claimable balance and tokens)."""
    before = snapshot()
    with ape.reverts(reason):
        call(*args, **kwargs)
    assert snapshot() == before


def settlement(**fields) -> dict:
    """A Settlement for a Vault other than the module's (its `settle` fixture is bound)."""
    s = dict(
        account_in=ZERO, amount_in=0, pool_delta=0, collateral_delta=0, escrow_delta=0,
        insurance_delta=0, account_out=ZERO, amount_out=0, reserved_delta=0,
        credit_account=ZERO, credit_amount=0,
    )
    s.update({k: getattr(v, "address", v) for k, v in fields.items()})
    return s


@pytest.fixture
def pooled(vault, lp, unit):
    vault.deposit(100_000 * unit + unit // 7, 0, lp, sender=lp)
    return vault


@pytest.fixture
def opened(pooled, settle, trader, unit):
    """A trader's position: 1,500 tokens and 3 units of collateral in the Vault."""
    collateral = 1_500 * unit + 3
    settle(account_in=trader, amount_in=collateral, collateral_delta=collateral)
    return collateral


@pytest.fixture
def credited(pooled, opened, settle, keeper, unit):
    """The position liquidated as Perp settles it: the collateral leaves its bucket, the
    keeper is credited its fee, the fund takes a cut and the pool keeps the rest.
    Returns the keeper's fee."""
    fee, cut = 7 * unit + 3, 2 * unit + 1
    settle(
        collateral_delta=-opened, pool_delta=opened - fee - cut, insurance_delta=cut,
        credit_account=keeper, credit_amount=fee,
    )
    return fee


# ------------------------------------------------------------------ settle with a credit


def test_settle__liquidation_credit__keeper_credited_no_token_moves(
    pooled, opened, token, keeper, controller, settle, unit, logs_of
):
    vault = pooled
    pool, tokens = vault.pool_amount(), token.balanceOf(vault)
    keeper_tokens = token.balanceOf(keeper)
    fee, cut = 7 * unit + 3, 2 * unit + 1

    tx = settle(
        collateral_delta=-opened, pool_delta=opened - fee - cut, insurance_delta=cut,
        credit_account=keeper, credit_amount=fee,
    )

    assert vault.claimable(keeper) == vault.claimable_amount() == fee
    assert (vault.pool_amount(), vault.collateral_amount()) == (pool + opened - fee - cut, 0)
    assert (vault.escrow_amount(), vault.insurance_amount()) == (0, cut)
    assert (token.balanceOf(vault), token.balanceOf(keeper)) == (tokens, keeper_tokens)
    assert logs_of(tx, token.Transfer, token) == []
    [log] = [decode_settled(x) for x in tx.decode_logs(vault.Settled)]
    assert log.controller == controller.address
    assert (log.pool_delta, log.collateral_delta) == (opened - fee - cut, -opened)
    assert (log.escrow_delta, log.insurance_delta, log.reserved_delta) == (0, cut, 0)
    assert log.credited == fee
    # the balance rule with the credit: the deltas sum to 0 - 0 - credit
    assert log.pool_delta + log.collateral_delta + log.escrow_delta + log.insurance_delta == -fee
    assert vault.total_owed() == pool + opened  # owed before: the credit is still owed
    assert_solvent(vault, token)


def test_settle__credit_with_amount_in_and_out__balance_rule_includes_all_three(
    pooled, token, trader, keeper, other_lp, settle, unit, logs_of
):
    """amount_in pulled, amount_out paid and a credit in one step: the deltas sum to
    in - out - credit, and the Vault's balance moves by in - out only."""
    vault = pooled
    pool, tokens = vault.pool_amount(), token.balanceOf(vault)
    amount_in, amount_out, credit = 900 * unit + 5, 100 * unit + 1, 3 * unit + 2
    collateral = amount_in - amount_out - credit

    tx = settle(
        account_in=trader, amount_in=amount_in, collateral_delta=collateral,
        account_out=other_lp, amount_out=amount_out, credit_account=keeper, credit_amount=credit,
    )

    assert (vault.pool_amount(), vault.collateral_amount()) == (pool, collateral)
    assert vault.claimable(keeper) == vault.claimable_amount() == credit
    assert token.balanceOf(vault) == tokens + amount_in - amount_out
    moves = [(t.sender, t.receiver, t.value) for t in logs_of(tx, token.Transfer, token)]
    assert moves == [
        (trader.address, vault.address, amount_in),
        (vault.address, other_lp.address, amount_out),
    ]
    [log] = [decode_settled(x) for x in tx.decode_logs(vault.Settled)]
    assert (log.collateral_delta, log.credited) == (collateral, credit)
    assert_solvent(vault, token)


def test_settle__credits_and_escrow__share_a_slot_but_stay_apart(
    pooled, token, trader, keeper, other_lp, settle, unit
):
    """escrow and claimable are packed in one word: each moves only by its own deltas, and
    credits add up per account and in total."""
    vault = pooled
    escrow, first, second, third = 300 * unit + 7, 2 * unit + 1, 5 * unit + 3, unit + 9

    settle(
        account_in=trader, amount_in=escrow + first, escrow_delta=escrow,
        credit_account=keeper, credit_amount=first,
    )
    assert (vault.escrow_amount(), vault.claimable_amount()) == (escrow, first)

    # the order executes, its keeper credited out of it
    settle(
        escrow_delta=-escrow, collateral_delta=escrow - second,
        credit_account=keeper, credit_amount=second,
    )
    assert (vault.escrow_amount(), vault.claimable_amount()) == (0, first + second)
    assert vault.collateral_amount() == escrow - second

    settle(collateral_delta=-third, credit_account=other_lp, credit_amount=third)
    assert vault.claimable(keeper) == first + second
    assert vault.claimable(other_lp) == third
    assert vault.claimable_amount() == first + second + third
    assert vault.escrow_amount() == 0
    assert_solvent(vault, token)


def test_settle__zero_credit_to_an_account__nothing_credited(pooled, opened, keeper, settle):
    vault = pooled
    tx = settle(collateral_delta=-1, pool_delta=1, credit_account=keeper, credit_amount=0)
    assert vault.claimable(keeper) == vault.claimable_amount() == 0
    [log] = [decode_settled(x) for x in tx.decode_logs(vault.Settled)]
    assert log.credited == 0


@pytest.mark.parametrize(
    "case",
    [
        dict(collateral_delta=-10, pool_delta=10, credit_amount=3),  # credit out of nothing
        dict(collateral_delta=-10, pool_delta=8, credit_amount=3),  # one unit short
        dict(collateral_delta=-10, pool_delta=6, credit_amount=3),  # one unit over
        dict(amount_in=10, collateral_delta=10, credit_amount=1),  # the credit not taken in
        dict(amount_out=4, collateral_delta=-4, credit_amount=1),  # paid and credited twice
    ],
    ids=["from_nothing", "short", "over", "in_ignores_credit", "out_ignores_credit"],
)
def test_settle__unbalanced_with_credit__refused(
    pooled, opened, trader, keeper, settle, snapshot, case
):
    fields = dict(case, credit_account=keeper)
    if fields.get("amount_in"):
        fields["account_in"] = trader
    if fields.get("amount_out"):
        fields["account_out"] = trader
    refused(snapshot, "vault: unbalanced settlement", settle, **fields)


def test_settle__credit_to_zero_account__refused(pooled, opened, settle, unit, snapshot):
    fee = 7 * unit + 3
    refused(
        snapshot, "vault: zero account",
        settle, collateral_delta=-fee, credit_account=ZERO, credit_amount=fee,
    )


@pytest.mark.parametrize("caller", ["attacker", "keeper", "deployer"])
def test_settle__credit_by_non_controller__refused(
    request, pooled, opened, settle, snapshot, caller
):
    """Nobody but a controller can credit itself, not even out of a balanced settlement."""
    who = request.getfixturevalue(caller)
    refused(
        snapshot, "vault: not controller",
        settle, sender=who, collateral_delta=-opened, credit_account=who, credit_amount=opened,
    )


def test_settle__credit_beyond_128_bits__refused_bucket_overflow(
    pooled, token, trader, keeper, settle, snapshot
):
    """The claimable total is a 128-bit half word, like every bucket."""
    amount = 2**128
    token.mint(trader, amount, sender=trader)
    refused(
        snapshot, "vault: bucket overflow",
        settle, account_in=trader, amount_in=amount, credit_account=keeper, credit_amount=amount,
    )


# ------------------------------------------------------------------ claim


def test_claim__credited_keeper__pays_exactly_and_zeroes_its_balance(
    vault, credited, token, keeper, other_lp, settle, unit, logs_of
):
    fee = credited
    other = 4 * unit + 1  # another keeper's credit, left alone
    settle(collateral_delta=0, pool_delta=-other, credit_account=other_lp, credit_amount=other)
    tokens, keeper_tokens = token.balanceOf(vault), token.balanceOf(keeper)
    pool, insurance = vault.pool_amount(), vault.insurance_amount()
    assert vault.claimable_amount() == fee + other

    tx = vault.claim(keeper, sender=keeper)

    assert tx.return_value == fee
    assert token.balanceOf(keeper) == keeper_tokens + fee
    assert token.balanceOf(vault) == tokens - fee
    assert vault.claimable(keeper) == 0
    assert vault.claimable(other_lp) == other
    assert vault.claimable_amount() == other
    assert (vault.pool_amount(), vault.insurance_amount()) == (pool, insurance)
    [log] = tx.decode_logs(vault.Claimed)
    assert (log.account, log.receiver, log.amount) == (keeper.address, keeper.address, fee)
    [pay] = logs_of(tx, token.Transfer, token)
    assert (pay.sender, pay.receiver, pay.value) == (vault.address, keeper.address, fee)
    assert_solvent(vault, token)


def test_claim__many_credits__one_claim_pays_their_sum(
    pooled, opened, token, keeper, settle, unit
):
    vault = pooled
    fees = [unit + 1, 2 * unit + 3, 5]
    for fee in fees:
        settle(collateral_delta=-fee, credit_account=keeper, credit_amount=fee)
    assert vault.claimable(keeper) == vault.claimable_amount() == sum(fees)
    keeper_tokens = token.balanceOf(keeper)

    assert vault.claim(keeper, sender=keeper).return_value == sum(fees)

    assert token.balanceOf(keeper) == keeper_tokens + sum(fees)
    assert vault.claimable(keeper) == vault.claimable_amount() == 0
    assert_solvent(vault, token)


def test_claim__to_another_receiver__receiver_paid_account_zeroed(
    vault, credited, token, keeper, other_lp, logs_of
):
    fee = credited
    keeper_tokens, receiver_tokens = token.balanceOf(keeper), token.balanceOf(other_lp)

    tx = vault.claim(other_lp, sender=keeper)

    assert tx.return_value == fee
    assert token.balanceOf(other_lp) == receiver_tokens + fee
    assert token.balanceOf(keeper) == keeper_tokens
    assert vault.claimable(keeper) == vault.claimable_amount() == 0
    assert vault.claimable(other_lp) == 0  # the receiver is paid, not credited
    [log] = tx.decode_logs(vault.Claimed)
    assert (log.account, log.receiver, log.amount) == (keeper.address, other_lp.address, fee)
    [pay] = logs_of(tx, token.Transfer, token)
    assert (pay.sender, pay.receiver, pay.value) == (vault.address, other_lp.address, fee)
    assert_solvent(vault, token)


def test_claim__nothing_credited__refused(pooled, opened, fresh_account, snapshot):
    refused(
        snapshot, "vault: nothing to claim",
        pooled.claim, fresh_account, sender=fresh_account,
    )


def test_claim__second_time__refused_nothing_to_claim(vault, credited, keeper, snapshot):
    vault.claim(keeper, sender=keeper)
    refused(snapshot, "vault: nothing to claim", vault.claim, keeper, sender=keeper)


def test_claim__zero_receiver__refused(vault, credited, keeper, snapshot):
    refused(snapshot, "vault: zero receiver", vault.claim, ZERO, sender=keeper)
    assert vault.claimable(keeper) == credited


@pytest.mark.parametrize("receiver", ["attacker", "keeper"])
def test_claim__someone_elses_balance__refused_nothing_to_claim(
    request, vault, credited, keeper, attacker, snapshot, receiver
):
    """claim pays only the caller's own balance, to whichever receiver it names."""
    refused(
        snapshot, "vault: nothing to claim",
        vault.claim, request.getfixturevalue(receiver), sender=attacker,
    )
    assert vault.claimable(keeper) == credited


def test_claim__attacker_with_its_own_credit__gets_only_its_own(
    vault, credited, token, keeper, attacker, settle, unit
):
    own = unit // 3 + 1
    settle(pool_delta=-own, credit_account=attacker, credit_amount=own)
    attacker_tokens = token.balanceOf(attacker)

    assert vault.claim(attacker, sender=attacker).return_value == own

    assert token.balanceOf(attacker) == attacker_tokens + own
    assert vault.claimable(keeper) == vault.claimable_amount() == credited
    assert_solvent(vault, token)


def test_claim__vault_paused__still_pays(vault, credited, token, deployer, keeper, lp, unit):
    vault.set_paused(True, sender=deployer)
    with ape.reverts("vault: paused"):  # the pause is on
        vault.deposit(unit, 0, lp, sender=lp)
    keeper_tokens = token.balanceOf(keeper)

    assert vault.claim(keeper, sender=keeper).return_value == credited

    assert vault.paused()
    assert token.balanceOf(keeper) == keeper_tokens + credited
    assert vault.claimable(keeper) == vault.claimable_amount() == 0
    assert_solvent(vault, token)


def test_claim__controller_revoked__still_pays(
    vault, credited, token, deployer, controller, keeper
):
    """The kill switch (no controller) stops settlements, not what keepers are owed."""
    vault.set_controller(controller, False, sender=deployer)
    keeper_tokens = token.balanceOf(keeper)

    assert vault.claim(keeper, sender=keeper).return_value == credited

    assert token.balanceOf(keeper) == keeper_tokens + credited
    assert_solvent(vault, token)


def test_claim__after_lps_redeem_everything__keeper_paid_in_full(
    vault, credited, token, keeper, lp, pass_cooldown, model
):
    """Credits are not LP money: an LP redeeming all its shares (at a value of the pool
    amount, which excludes the claimable bucket) leaves the keeper's fee in the Vault."""
    pass_cooldown()
    shares = vault.balanceOf(lp)
    q = model.quote_redeem(vault, shares)
    assert vault.redeem(shares, 0, lp, sender=lp).return_value == q.amount
    assert vault.claimable_amount() == credited
    assert token.balanceOf(vault) >= vault.total_owed() >= credited
    keeper_tokens = token.balanceOf(keeper)

    assert vault.claim(keeper, sender=keeper).return_value == credited

    assert token.balanceOf(keeper) == keeper_tokens + credited
    assert_solvent(vault, token)


# ------------------------------------------------------------------ special tokens


@pytest.fixture
def reentrant(project, deployer, create_vault, controller, trader, keeper):
    """A Vault over TestReentrantToken (6 decimals): the keeper is credited 7.000003 and the
    token contract itself 2.000001, so a re-entrant claim by the token has a balance to take."""
    token = deployer.deploy(project.TestReentrantToken)
    vault = create_vault(token)
    vault.set_controller(controller, True, sender=deployer)
    token.mint(trader, 1_000 * 10**6, sender=trader)
    token.approve(vault, MAX, sender=trader)
    fee, own = 7_000_003, 2_000_001
    for account, amount in ((keeper, fee), (token, own)):
        vault.settle(
            settlement(account_in=trader, amount_in=amount, credit_account=account,
                       credit_amount=amount),
            sender=controller,
        )
    return vault, token, fee, own


def test_claim__reentrant_token_claims_during_payout__refused_by_the_lock_paid_once(
    reentrant, keeper, attacker
):
    vault, token, fee, own = reentrant
    token.arm(vault, vault.claim.encode_input(attacker), sender=attacker)

    tx = vault.claim(keeper, sender=keeper)

    assert token.reentry_attempted() and not token.reentry_succeeded()
    assert bytes(token.reentry_returndata()) == b""  # the lock's refusal carries no reason
    assert tx.return_value == fee
    assert [log.amount for log in tx.decode_logs(vault.Claimed)] == [fee]
    assert (token.balanceOf(keeper), token.balanceOf(attacker)) == (fee, 0)
    assert (vault.claimable(keeper), vault.claimable(token)) == (0, own)
    assert vault.claimable_amount() == own
    assert_solvent(vault, token)


def test_claim__reentrant_token_claims_outside_a_payout__once_then_nothing_to_claim(
    reentrant, keeper, attacker
):
    """The control: the same calldata fired by a plain transfer (no Vault lock held) claims
    the token's own balance; a second claim finds nothing."""
    vault, token, fee, own = reentrant
    payload = vault.claim.encode_input(attacker)
    token.arm(vault, payload, sender=attacker)
    token.transfer(attacker, 0, sender=attacker)
    assert token.reentry_attempted() and token.reentry_succeeded()
    assert token.balanceOf(attacker) == own
    assert (vault.claimable(token), vault.claimable_amount()) == (0, fee)

    token.arm(vault, payload, sender=attacker)
    token.transfer(attacker, 0, sender=attacker)

    assert token.reentry_attempted() and not token.reentry_succeeded()
    data = bytes(token.reentry_returndata())
    assert data[:4] == ERROR_SELECTOR
    assert abi_decode(["string"], data[4:]) == ("vault: nothing to claim",)
    assert token.balanceOf(attacker) == own
    assert vault.claimable(keeper) == vault.claimable_amount() == fee
    assert_solvent(vault, token)


def test_claim__token_transfer_returns_false__refused_balance_kept(
    project, deployer, create_vault, controller, trader, keeper, state_of
):
    token = deployer.deploy(project.TestFalseToken, 6)
    vault = create_vault(token)
    vault.set_controller(controller, True, sender=deployer)
    token.mint(trader, 100 * 10**6, sender=trader)
    token.approve(vault, MAX, sender=trader)
    fee = 7_000_003
    vault.settle(
        settlement(account_in=trader, amount_in=fee, credit_account=keeper, credit_amount=fee),
        sender=controller,
    )
    token.set_failing(True, sender=trader)
    before = state_of(vault, token, keeper, trader)
    assert before[f"{keeper} claimable"] == before["claimable_amount"] == fee

    with ape.reverts("vault: transfer failed"):
        vault.claim(keeper, sender=keeper)

    assert state_of(vault, token, keeper, trader) == before
