"""Attack catalogue: odd collateral tokens. A USDT-style token whose transfers return
nothing (the Vault accepts a missing return value, never a failed transfer), and a token
that returns false instead of reverting (every pull and every payout is refused with
"vault: transfer failed", the whole call rolls back: no shares minted, no position or
credit lost, and it pays out in full once the token works again).

Cases:
  test_attack__no_return_token__round_trip_pays_exactly_balance_equals_owed
  test_attack__no_return_token_without_funds__pull_reverts_nothing_minted
  test_attack__false_returning_token_on_pulls__refused_transfer_failed
  test_attack__false_returning_token_on_payouts__refused_transfer_failed_nothing_lost
"""

from __future__ import annotations

import ape
import pytest

from attack_kit import assert_solvent, hold_time, quote_redeem, refused, snapshot, wealth
from helpers import MAX_UINT, WAD, Position, build_env, close_position, config_of, elapse, indices_used, left_of, open_position, pin, push_fresh
from orders_helpers import FEE, MARKET_INCREASE

SEED = 3_000 * WAD


@pytest.fixture(scope="module")
def nr(project, deployer, keeper, lp, chain, trader):
    """The protocol on a token whose transfer functions return nothing."""
    e = build_env(project, deployer, keeper, lp, chain, 6, token=deployer.deploy(project.TestNoReturnToken, 6))
    e.fund(trader)
    return e


@pytest.fixture(scope="module")
def ft(project, deployer, keeper, lp, chain, trader, attacker):
    """The protocol on a token that returns false when told to fail. The trader holds a
    long and the attacker (an LP) shares and a keeper credit."""
    e = build_env(project, deployer, keeper, lp, chain, 6, token=deployer.deploy(project.TestFalseToken, 6))
    e.fund(trader)
    e.fund(attacker)
    push_fresh(e, e.eth, SEED)
    pin(e)
    open_position(e, trader, e.eth, True, e.usd(10_000), 100_000 * WAD)
    open_position(e, attacker, e.eth, True, e.usd(2_500), 100_000 * WAD)
    e.vault.deposit(e.usd(10_000), 0, attacker, sender=attacker)
    return e


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(nr, ft, deployer, attacker, keeper, trader, lp):
    """Module fixtures before any test (Ape's isolation never rebases a snapshot)."""


def test_attack__no_return_token__round_trip_pays_exactly_balance_equals_owed(nr, trader, lp):
    """Open, close, LP redeem: each amount as the model says, and the Vault's balance is
    exactly what it owes after each step (no transfer silently skipped)."""
    e = nr
    push_fresh(e, e.eth, SEED)
    pin(e)
    start = wealth(e, trader)
    open_position(e, trader, e.eth, True, e.usd(10_000), 100_000 * WAD)
    assert e.token.balanceOf(e.vault) == e.vault.total_owed()
    push_fresh(e, e.eth, SEED * 101 // 100)
    hold_time(e)
    pos = Position.of(e.perp.get_position(trader, e.eth, True))
    log = close_position(e, trader, e.eth, True).decode_logs(e.perp.PositionUpdate)[0]
    assert log.amount_out == left_of(pos, True, SEED * 101 // 100, indices_used(e, e.eth), config_of(e.configurator, e.eth), e.scale)
    assert wealth(e, trader) == start - e.usd(10_000) + log.amount_out
    assert e.token.balanceOf(e.vault) == e.vault.total_owed()
    elapse(e, e.vault.cooldown(), e.eth, SEED)
    shares = e.vault.balanceOf(lp) // 2
    paid, _ = quote_redeem(e, shares)
    tokens = e.token.balanceOf(lp)
    e.vault.redeem(shares, 0, lp, sender=lp)
    assert e.token.balanceOf(lp) == tokens + paid
    assert e.token.balanceOf(e.vault) == e.vault.total_owed()


def test_attack__no_return_token_without_funds__pull_reverts_nothing_minted(nr, attacker, trader, lp):
    """An account without tokens (and without approval) cannot have a silent no-op
    transfer counted as paid: the token reverts and so does the whole call."""
    e = nr
    push_fresh(e, e.eth, SEED)
    hold_time(e)
    assert e.token.balanceOf(attacker) == 0
    for call, args in (
        (e.vault.deposit, (e.usd(1_000), 0, attacker)),
        (e.perp.increase_position, (e.eth, True, e.usd(1_000), 10_000 * WAD, MAX_UINT)),
        (e.vault.fund_insurance, (e.usd(1_000),)),
    ):
        before = snapshot(e, [attacker, trader, lp])
        with ape.reverts():
            call(*args, sender=attacker)
        assert snapshot(e, [attacker, trader, lp]) == before
    assert e.vault.balanceOf(attacker) == 0
    assert_solvent(e)


def test_attack__false_returning_token_on_pulls__refused_transfer_failed(ft, attacker, trader, lp, deployer):
    e = ft
    e.token.set_failing(True, sender=deployer)
    push_fresh(e, e.eth, SEED)
    people = [attacker, trader, lp]
    refused(e, people, "vault: transfer failed", e.vault.deposit, e.usd(1_000), 0, attacker, sender=attacker)
    refused(e, people, "vault: transfer failed", e.perp.increase_position, e.eth, False, e.usd(1_000), 10_000 * WAD, 0, sender=attacker)
    refused(e, people, "vault: transfer failed", e.vault.fund_insurance, e.usd(1_000), sender=attacker)
    refused(e, people, "vault: transfer failed", e.orders.create_order, e.eth, MARKET_INCREASE, False, e.usd(1_000), 10_000 * WAD, 0, 0, FEE, sender=attacker)


def test_attack__false_returning_token_on_payouts__refused_transfer_failed_nothing_lost(ft, attacker, trader, lp, keeper, deployer):
    """While the token fails, a close, a redeem and a claim are refused whole: the
    position, the shares and the credit stay. Once it works, each pays in full."""
    e = ft
    push_fresh(e, e.eth, SEED * 98 // 100)
    hold_time(e)
    e.perp.liquidate(attacker, e.eth, True, keeper, sender=keeper)  # a keeper credit
    elapse(e, e.vault.cooldown(), e.eth, SEED * 98 // 100)
    e.token.set_failing(True, sender=deployer)
    people = [attacker, trader, lp, keeper]
    size = e.perp.get_position(trader, e.eth, True).size_usd
    shares = e.vault.balanceOf(attacker)
    refused(e, people, "vault: transfer failed", e.perp.decrease_position, e.eth, True, 0, size, 0, trader, sender=trader)
    refused(e, people, "vault: transfer failed", e.vault.redeem, shares, 0, attacker, sender=attacker)
    refused(e, people, "vault: transfer failed", e.vault.claim, keeper, sender=keeper)

    e.token.set_failing(False, sender=deployer)
    t = hold_time(e)
    credit, tokens = e.vault.claimable(keeper), e.token.balanceOf(keeper)
    e.vault.claim(keeper, sender=keeper)
    assert e.token.balanceOf(keeper) == tokens + credit
    paid, _ = quote_redeem(e, shares)
    tokens = e.token.balanceOf(attacker)
    pin(e, t)
    e.vault.redeem(shares, 0, attacker, sender=attacker)
    assert e.token.balanceOf(attacker) == tokens + paid
    pos = Position.of(e.perp.get_position(trader, e.eth, True))
    tokens = e.token.balanceOf(trader)
    log = close_position(e, trader, e.eth, True).decode_logs(e.perp.PositionUpdate)[0]
    assert log.amount_out == left_of(pos, True, SEED * 98 // 100, indices_used(e, e.eth), config_of(e.configurator, e.eth), e.scale)
    assert e.token.balanceOf(trader) == tokens + log.amount_out
    assert_solvent(e)
