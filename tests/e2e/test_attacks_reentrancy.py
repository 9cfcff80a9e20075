"""Attack catalogue: reentrancy. Every value-moving entry point holds its contract's lock
(`# pragma nonreentrancy on`), and every token transfer happens inside the Vault, last.

The protocol is deployed on TestReentrantToken (6 decimals), which hands control to an
attacker contract (TestReentrantReceiver, "R") in the middle of a transfer: on a pull
(transferFrom: the token's own callback) or on a push to R (R as the contract receiver of
a payout, as an ERC-777 hook or a full-gas ETH refund would give it control). R owns a
position, LP shares, orders and keeper credit, so each re-entrant call would be valid on
its own (each test's control shows it succeeding unlocked). Each test asserts that the
re-entry was refused with the lock's bare revert (no reason string: every assert of the
protocol has one), that the outer call took full effect, and that the state after equals
the state after the same outer call with nobody re-entering (nothing lost, nothing extra).

Cases:
  test_attack__reenter_perp_from_increase_collateral_pull__refused_by_lock
  test_attack__reenter_vault_redeem_from_deposit_pull__refused_by_lock
  test_attack__reenter_vault_from_order_escrow_pull__refused_by_lock
  test_attack__receiver_reenters_decrease_from_its_payout__refused_by_lock
  test_attack__receiver_double_redeems_from_its_payout__refused_by_lock
  test_attack__receiver_double_claims_from_its_payout__refused_by_lock
  test_attack__order_owner_cancels_twice_from_its_refund__refused_by_lock
  test_attack__receiver_reenters_from_insurance_withdrawal__refused_by_lock
  test_attack__keeper_credits_pay_no_receiver__no_callback_at_all
  test_attack__view_read_mid_payout__perp_and_vault_views_refused
  test_attack__view_read_mid_lp_call__pool_value_already_final
  test_attack__eth_sent_to_protocol__refused_no_eth_receiver_path
"""

from __future__ import annotations

import ape
import pytest

from attack_kit import assert_solvent, assert_unchanged, snapshot
from helpers import MAX_UINT, WAD, build_env, pin, push_fresh
from orders_helpers import FEE, MARKET_DECREASE, STOP_LOSS
from chain_isolation import isolated

SEED = 3_000 * WAD


@pytest.fixture(scope="module")
def env(project, deployer, keeper, lp, chain):
    token = deployer.deploy(project.TestReentrantToken)
    e = build_env(project, deployer, keeper, lp, chain, 6, token=token)
    e.vault.set_cooldown(0, sender=deployer)  # R may redeem at once (the lock is the subject)
    return e


@pytest.fixture(scope="module")
def rx(env, project, deployer, attacker, trader):
    """R: an attacker contract funded with tokens, holding LP shares, an ETH long, a
    stop-loss order and keeper credit. The trader is funded and holds an ETH long."""
    r = deployer.deploy(project.TestReentrantReceiver)
    token, vault, perp = env.token, env.vault, env.perp
    token.mint(r, env.usd(1_000_000), sender=attacker)
    r.exec(token, token.approve.encode_input(vault, MAX_UINT), sender=attacker)
    r.exec(vault, vault.deposit.encode_input(env.usd(100_000), 0, r), sender=attacker)
    r.exec(perp, perp.increase_position.encode_input(env.eth, True, env.usd(10_000), 50_000 * WAD, MAX_UINT), sender=attacker)
    for trigger in (SEED // 2, SEED // 3):  # two stop-losses, far below the price
        r.exec(env.orders, env.orders.create_order.encode_input(env.eth, STOP_LOSS, True, 0, 10_000 * WAD, 0, trigger, FEE), sender=attacker)
    env.fund(trader)
    perp.increase_position(env.eth, True, env.usd(1_300), 50_000 * WAD, MAX_UINT, sender=trader)  # ~38x
    return r


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, rx, deployer, attacker, trader, keeper, lp):
    """Module fixtures before any test (Ape's isolation never rebases a snapshot)."""


def arm(env, r, attacker, target, payload) -> None:
    """The next token transfer hands control to R, which then calls `target`."""
    r.set_attack(target, payload, sender=attacker)
    env.token.arm(r, r.attack.encode_input(), sender=attacker)


def assert_lock_refused(r) -> None:
    assert r.attempted(), "the re-entry never ran"
    assert not r.succeeded()
    assert bytes(r.returndata()) == b"", "a bare revert (the lock), not a named refusal"


def accounts_of(env, r, *more):
    return [r, env.vault, *more]


def run_twice(env, chain, r, attacker, target, payload, outer, watch):
    """`outer()` once with nobody re-entering (the reference, then rolled back) and once
    with R re-entering `target`, both mined at the same second; returns (reference
    snapshot, attacked snapshot)."""
    arm(env, r, attacker, target, payload)
    t = chain.blocks.head.timestamp + 5
    with isolated(chain):
        env.token.disarm(sender=attacker)
        r.set_attack(target, payload, sender=attacker)  # R's record cleared, no callback comes
        chain.pending_timestamp = t
        outer()
        assert not r.attempted()
        reference = snapshot(env, watch)
    chain.pending_timestamp = t
    outer()
    assert_lock_refused(r)
    return reference, snapshot(env, watch)


# ---------------------------------------------------------------- the token's callback on pulls


def test_attack__reenter_perp_from_increase_collateral_pull__refused_by_lock(env, rx, chain, attacker, trader):
    """While Perp pulls the trader's collateral (Vault.settle -> transferFrom), R tries
    to open a short of its own."""
    payload = env.perp.increase_position.encode_input(env.eth, False, env.usd(1_000), 5_000 * WAD, 0)
    watch = accounts_of(env, rx, trader)
    ref, got = run_twice(
        env, chain, rx, attacker, env.perp, payload,
        lambda: env.perp.increase_position(env.eth, True, env.usd(1_000), 2_000 * WAD, MAX_UINT, sender=trader),
        watch,
    )
    assert_unchanged(ref, got)
    assert env.perp.get_position(rx, env.eth, False).size_usd == 0
    assert_solvent(env)
    rx.exec(env.perp, payload, sender=attacker)  # control: unlocked, the same call opens it
    assert env.perp.get_position(rx, env.eth, False).size_usd == 5_000 * WAD


def test_attack__reenter_vault_redeem_from_deposit_pull__refused_by_lock(env, rx, chain, attacker, lp):
    """While the Vault pulls an LP's deposit (after minting its shares), R tries to redeem
    against the half-finished deposit."""
    payload = env.vault.redeem.encode_input(env.vault.balanceOf(rx) // 2, 0, rx)
    ref, got = run_twice(
        env, chain, rx, attacker, env.vault, payload,
        lambda: env.vault.deposit(env.usd(50_000), 0, lp, sender=lp),
        accounts_of(env, rx, lp),
    )
    assert_unchanged(ref, got)
    assert_solvent(env)
    shares = env.vault.balanceOf(rx)
    rx.exec(env.vault, payload, sender=attacker)  # control
    assert env.vault.balanceOf(rx) == shares - shares // 2


def test_attack__reenter_vault_from_order_escrow_pull__refused_by_lock(env, rx, chain, attacker, trader):
    """While the OrderBook escrows an order's fee (Vault.settle -> transferFrom), R tries
    to deposit: the Vault is locked."""
    payload = env.vault.deposit.encode_input(env.usd(1_000), 0, rx)
    ref, got = run_twice(
        env, chain, rx, attacker, env.vault, payload,
        lambda: env.orders.create_order(env.eth, MARKET_DECREASE, True, 0, 1_000 * WAD, 0, 0, FEE, sender=trader),
        accounts_of(env, rx, trader),
    )
    assert_unchanged(ref, got)
    assert_solvent(env)


# ---------------------------------------------------------------- R as the paid receiver


def test_attack__receiver_reenters_decrease_from_its_payout__refused_by_lock(env, rx, chain, attacker):
    """R withdraws collateral to itself; paid, it tries to close the rest of its position
    (a second payout out of the same, not yet finished, settlement)."""
    pos = env.perp.get_position(rx, env.eth, True)
    payload = env.perp.decrease_position.encode_input(env.eth, True, 0, pos.size_usd, 0, rx)
    withdraw = env.perp.decrease_position.encode_input(env.eth, True, env.usd(1_000), 0, 0, rx)
    tokens = env.token.balanceOf(rx)
    ref, got = run_twice(
        env, chain, rx, attacker, env.perp, payload,
        lambda: rx.exec(env.perp, withdraw, sender=attacker),
        accounts_of(env, rx),
    )
    assert_unchanged(ref, got)
    assert got["tokens"][str(rx)] == tokens + env.usd(1_000)  # one payout, exactly
    assert env.perp.get_position(rx, env.eth, True).size_usd == pos.size_usd
    assert_solvent(env)


def test_attack__receiver_double_redeems_from_its_payout__refused_by_lock(env, rx, chain, attacker):
    shares = env.vault.balanceOf(rx)
    payload = env.vault.redeem.encode_input(shares // 2, 0, rx)
    ref, got = run_twice(
        env, chain, rx, attacker, env.vault, payload,
        lambda: rx.exec(env.vault, env.vault.redeem.encode_input(shares // 2, 0, rx), sender=attacker),
        accounts_of(env, rx),
    )
    assert_unchanged(ref, got)
    assert env.vault.balanceOf(rx) == shares - shares // 2
    assert_solvent(env)


def test_attack__receiver_double_claims_from_its_payout__refused_by_lock(env, rx, chain, attacker, trader, keeper):
    """R earned a keeper credit (it liquidated the trader); paid by `claim`, it claims again."""
    push_fresh(env, env.eth, SEED * 95 // 100)  # the trader's ~38x long is under water
    pin(env)
    env.perp.liquidate(trader, env.eth, True, rx, sender=keeper)
    credit = env.vault.claimable(rx)
    assert credit > 0
    payload = env.vault.claim.encode_input(rx)
    tokens = env.token.balanceOf(rx)
    ref, got = run_twice(
        env, chain, rx, attacker, env.vault, payload,
        lambda: rx.exec(env.vault, payload, sender=attacker),
        accounts_of(env, rx),
    )
    assert_unchanged(ref, got)
    assert env.vault.claimable(rx) == 0
    assert got["tokens"][str(rx)] == tokens + credit  # paid once
    assert_solvent(env)


def test_attack__order_owner_cancels_twice_from_its_refund__refused_by_lock(env, rx, chain, attacker):
    """R cancels its first stop-loss (the fee comes back by transfer); paid, it cancels the
    second one from inside the OrderBook's own call."""
    first, second = env.orders.next_order_id() - 2, env.orders.next_order_id() - 1
    assert env.orders.get_order(first).owner == env.orders.get_order(second).owner == rx.address
    payload = env.orders.cancel_order.encode_input(second)
    ref, got = run_twice(
        env, chain, rx, attacker, env.orders, payload,
        lambda: rx.exec(env.orders, env.orders.cancel_order.encode_input(first), sender=attacker),
        accounts_of(env, rx),
    )
    assert_unchanged(ref, got)
    assert env.orders.get_order(second).owner == rx.address  # still there
    assert_solvent(env)


def test_attack__receiver_reenters_from_insurance_withdrawal__refused_by_lock(env, rx, chain, attacker, deployer, lp):
    """The admin pays insurance out to R (a contract); R re-enters the Vault."""
    env.vault.fund_insurance(env.usd(5_000), sender=lp)
    payload = env.vault.deposit.encode_input(env.usd(1_000), 0, rx)
    ref, got = run_twice(
        env, chain, rx, attacker, env.vault, payload,
        lambda: env.vault.withdraw_insurance(env.usd(5_000), rx, sender=deployer),
        accounts_of(env, rx),
    )
    assert_unchanged(ref, got)
    assert_solvent(env)


def test_attack__keeper_credits_pay_no_receiver__no_callback_at_all(env, rx, attacker, trader, keeper):
    """Liquidation fees (and order payouts) are credited in the Vault, never transferred:
    a contract fee receiver gets no control inside a liquidation."""
    push_fresh(env, env.eth, SEED * 95 // 100)  # the trader's ~38x long is under water
    pin(env)
    arm(env, rx, attacker, env.perp, env.perp.increase_position.encode_input(env.eth, False, env.usd(1_000), 5_000 * WAD, 0))
    tokens = env.token.balanceOf(rx)
    env.perp.liquidate(trader, env.eth, True, rx, sender=keeper)
    assert not env.token.reentry_attempted() and not rx.attempted()  # no transfer ran
    assert env.token.balanceOf(rx) == tokens and env.vault.claimable(rx) > 0
    env.token.disarm(sender=attacker)
    assert_solvent(env)


# ---------------------------------------------------------------- a view read mid-call


def test_attack__view_read_mid_payout__perp_and_vault_views_refused(env, rx, attacker):
    """Mid-payout of a trade both Perp and the Vault are locked: a third party (or R) that
    prices LP shares from their views cannot read a half-settled state."""
    withdraw = env.perp.decrease_position.encode_input(env.eth, True, env.usd(1_000), 0, 0, rx)
    for target, payload in (
        (env.perp, env.perp.pool_value.encode_input(True)),
        (env.vault, env.vault.share_price.encode_input(False)),
        (env.vault, env.vault.pool_value.encode_input(False)),
    ):
        before = snapshot(env, [rx])
        arm(env, rx, attacker, target, payload)
        rx.exec(env.perp, withdraw, sender=attacker)
        assert_lock_refused(rx)
        after = snapshot(env, [rx])
        assert after["tokens"][str(rx)] == before["tokens"][str(rx)] + env.usd(1_000)
    assert_solvent(env)


def test_attack__view_read_mid_lp_call__pool_value_already_final(env, rx, attacker, lp):
    """Mid-deposit and mid-redeem only the Vault is locked; Perp's pool_value stays
    readable (it reads the Vault's pool amount), and it already equals the value after the
    call: the Vault writes everything before it moves tokens. The Vault's own views are
    refused."""
    pin(env)
    arm(env, rx, attacker, env.perp, env.perp.pool_value.encode_input(True))
    env.vault.deposit(env.usd(50_000), 0, lp, sender=lp)
    assert rx.succeeded()
    assert int.from_bytes(bytes(rx.returndata()), "big") == env.perp.pool_value(True)

    arm(env, rx, attacker, env.perp, env.perp.pool_value.encode_input(False))
    rx.exec(env.vault, env.vault.redeem.encode_input(env.vault.balanceOf(rx) // 3, 0, rx), sender=attacker)
    assert rx.succeeded()
    assert int.from_bytes(bytes(rx.returndata()), "big") == env.perp.pool_value(False)

    arm(env, rx, attacker, env.vault, env.vault.share_price.encode_input(True))
    env.vault.deposit(env.usd(1_000), 0, lp, sender=lp)
    assert_lock_refused(rx)
    assert_solvent(env)


def test_attack__eth_sent_to_protocol__refused_no_eth_receiver_path(env, attacker):
    """No contract is payable and none sends ETH: there is no ETH refund to re-enter from,
    and ETH sent by mistake bounces."""
    for contract in (env.perp, env.vault, env.orders, env.oracle, env.configurator, env.risk):
        balance = attacker.balance
        with ape.reverts():
            attacker.transfer(contract, 10**18, gas_limit=100_000)
        assert ape.chain.provider.get_balance(contract.address) == 0
        assert attacker.balance <= balance
