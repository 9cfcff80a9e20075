"""Attack catalogue: the LP pool. First-depositor inflation and donations (the Vault
counts recorded buckets, never its token balance), redeeming reserved liquidity, locking a
victim's shares, LP deposits and redemptions timed around a price push, and a trader
flash-depositing LP around their own close to recoup its fee. Expected amounts come from
the Vault's formulas (attack_kit.quote_deposit / quote_redeem) at Perp's pool value.

Cases:
  test_attack__first_deposit_of_dust__refused_first_deposit_too_small
  test_attack__first_depositor_inflation_by_donation__not_profitable_victim_keeps_value
  test_attack__donation__changes_no_share_price_donor_only_loses
  test_attack__redeem_reserved_liquidity__refused_reserved
  test_attack__deposit_for_a_victim_to_lock_its_shares__refused_depositor_not_approved
  test_attack__lp_sandwich_of_a_price_push__redeem_and_share_transfer_refused_cooldown
  test_attack__lp_deposit_before_a_known_price_push__not_profitable
  test_attack__lp_redeem_before_a_known_price_push__not_profitable
  test_attack__lp_deposit_and_redeem_around_the_pnl_cap__refused_dilute_and_beyond_share
  test_attack__trader_flash_lp_around_own_close__not_profitable
"""

from __future__ import annotations

import pytest

from attack_kit import (
    assert_solvent,
    assert_unchanged,
    hold_time,
    quote_deposit,
    quote_redeem,
    refused,
    snapshot,
    wealth,
)
from helpers import WAD, Env, build_env, close_position, elapse, open_position, pin, push_fresh
from perpool.deploy import deploy_protocol
from perpool.params import MIN_EXECUTION_FEE as FEE
from perpool.prices import push_stepped
from chain_isolation import isolated

SEED = 3_000 * WAD


@pytest.fixture(scope="module")
def env(project, deployer, keeper, lp, chain, attacker, trader, other_lp):
    """A $1M pool (mint and burn fees 10 bps, 15 min cooldown, as deployed)."""
    e = build_env(project, deployer, keeper, lp, chain, 6)
    for who in (attacker, trader, other_lp):
        e.fund(who, 5_000_000)
    return e


@pytest.fixture(scope="module")
def empty(project, deployer, keeper, chain, attacker, other_lp):
    """A second protocol whose Vault has no LP yet."""
    token = deployer.deploy(project.TestToken, "Test USD", "tUSD", 6)
    e = Env.of(deploy_protocol(project, deployer, token, updaters=(keeper,), chain=chain), keeper, chain)
    e.fund(attacker, 20_000_000)
    e.fund(other_lp, 1_000_000)
    return e


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, empty, deployer, attacker, keeper, trader, lp, other_lp):
    """Module fixtures before any test (Ape's isolation never rebases a snapshot)."""


def after_cooldown(env, price=SEED) -> int:
    """Let the cooldown pass with the price kept fresh (no outage spread)."""
    return elapse(env, env.vault.cooldown() + 1, env.eth, price)


# ---------------------------------------------------------------- inflation and donation


def test_attack__first_deposit_of_dust__refused_first_deposit_too_small(empty, attacker, other_lp):
    """The inflation set-up needs a pool opened with a dust deposit: the first deposit must
    be worth $1 after its fee."""
    people = [attacker, other_lp]
    refused(empty, people, "vault: first deposit too small", empty.vault.deposit, 1, 0, attacker, sender=attacker)
    fee_bps = empty.vault.mint_fee_bps()
    just_short = 10**6 * 10_000 // (10_000 - fee_bps)  # its net of fee is below $1
    assert (just_short - -(-just_short * fee_bps // 10_000)) * empty.scale < WAD
    refused(empty, people, "vault: first deposit too small", empty.vault.deposit, just_short, 0, attacker, sender=attacker)


def test_attack__first_depositor_inflation_by_donation__not_profitable_victim_keeps_value(empty, attacker, other_lp):
    """The attacker opens the pool with the minimum, redeems down to one share-wei (the
    dead shares stay), then donates $10M to inflate a share. Donations are not recorded:
    the victim mints at the recorded pool value and gets back its deposit less the two
    fees; the attacker loses its donation."""
    e = empty
    start = wealth(e, attacker)
    first = 1_002_000  # $1.002: its net of the 10 bps fee is at least $1
    shares, _ = quote_deposit(e, first)
    assert e.vault.deposit(first, 0, attacker, sender=attacker).return_value == shares
    after_cooldown(e)
    e.vault.redeem(shares - 1, 0, attacker, sender=attacker)
    e.token.transfer(e.vault, e.usd(10_000_000), sender=attacker)
    price = e.vault.share_price(True)

    deposit = e.usd(20_000)
    minted, mint_fee = quote_deposit(e, deposit)
    assert e.vault.deposit(deposit, 0, other_lp, sender=other_lp).return_value == minted
    assert e.vault.share_price(True) >= price  # the victim's deposit did not dilute anyone
    after_cooldown(e)
    paid, burn_fee = quote_redeem(e, minted)
    assert e.vault.redeem(minted, 0, other_lp, sender=other_lp).return_value == paid
    assert paid >= deposit - mint_fee - burn_fee - 1  # fees and at most a unit of rounding
    assert wealth(e, attacker) < start - e.usd(10_000_000)
    assert_solvent(e)


def test_attack__donation__changes_no_share_price_donor_only_loses(env, attacker, lp):
    pin(env)
    hold_time(env)
    before = snapshot(env, [lp])
    donation = env.usd(1_000_000)
    tokens = env.token.balanceOf(attacker)
    env.token.transfer(env.vault, donation, sender=attacker)
    after = snapshot(env, [lp])
    assert after["vault_balance"] == before["vault_balance"] + donation
    after["vault_balance"] = before["vault_balance"]
    assert_unchanged(before, after)  # share price, pool value, buckets: all as before
    assert env.token.balanceOf(attacker) == tokens - donation
    assert env.token.balanceOf(env.vault) == env.vault.total_owed() + donation


# ---------------------------------------------------------------- exits and cooldown


def test_attack__redeem_reserved_liquidity__refused_reserved(env, lp, trader, attacker):
    """Traders' open interest reserves pool money: an LP cannot pull it from under them."""
    push_fresh(env, env.eth, SEED)
    pin(env)
    open_position(env, trader, env.eth, True, env.usd(100_000), 900_000 * WAD)
    after_cooldown(env)
    shares = env.vault.balanceOf(lp)
    paid, _ = quote_redeem(env, shares)
    assert env.vault.pool_amount() - paid < env.vault.reserved_amount()
    refused(env, [lp, trader, attacker], "vault: reserved", env.vault.redeem, shares, 0, lp, sender=lp)


def test_attack__deposit_for_a_victim_to_lock_its_shares__refused_depositor_not_approved(env, lp, attacker):
    """A deposit restarts its receiver's cooldown: dust sent to a victim's account would
    freeze its shares, so it needs the victim's approval."""
    refused(env, [lp, attacker], "vault: depositor not approved", env.vault.deposit, env.usd(1), 0, lp, sender=attacker)


def test_attack__lp_sandwich_of_a_price_push__redeem_and_share_transfer_refused_cooldown(env, attacker, trader, other_lp):
    """Deposit just before a push that makes traders lose, redeem right after: the cooldown
    refuses the redeem, and the shares cannot be moved to an account that could."""
    push_fresh(env, env.eth, SEED)
    pin(env)
    open_position(env, trader, env.eth, True, env.usd(100_000), 900_000 * WAD)
    env.vault.deposit(env.usd(1_000_000), 0, attacker, sender=attacker)
    push_fresh(env, env.eth, SEED * 9 // 10)
    hold_time(env)
    shares = env.vault.balanceOf(attacker)
    people = [attacker, trader, other_lp]
    refused(env, people, "vault: cooldown", env.vault.redeem, shares, 0, attacker, sender=attacker)
    refused(env, people, "vault: cooldown", env.vault.transfer, other_lp, shares, sender=attacker)


def push_all(env, eth_price: int) -> int:
    """The keeper's push of every market (ETH at `eth_price`, the rest as stored), stepped
    through the jump bound; the clock stays at the last push."""
    prices = {m: env.oracle.price_data(m).price for m in env.markets.values()}
    prices[env.eth] = eth_price
    t = push_stepped(env.oracle, env.chain, env.keeper, prices)
    pin(env, t)
    return t


def lp_orders_only(env) -> None:
    """Direct trading and direct LP flows off: the deployment off a local network."""
    for m in env.markets.values():
        env.configurator.set_direct_fills(m, False, sender=env.configurator.admin())
    env.vault.set_lp_orders_only(True, sender=env.vault.admin())


def test_attack__lp_deposit_before_a_known_price_push__not_profitable(env, attacker, trader, lp, other_lp):
    """Traders hold $900k of longs in a $1M pool. The attacker sees ETH fall 3 % on an
    exchange before the keeper pushes it, and wants to deposit $1M at the pool value before
    the push (the longs' loss is the pool's gain) and redeem after the cooldown. The direct
    deposit is refused ("vault: LP orders only"); the deposit order fills only at prices
    observed after it, so it buys its shares at the value after the push: no profit. (With
    direct deposits it made ~$27k, paid by the LPs: the finding this closes.)"""
    push_fresh(env, env.eth, SEED)
    pin(env)
    open_position(env, trader, env.eth, True, env.usd(100_000), 900_000 * WAD)
    lp_orders_only(env)
    people = [lp, attacker, trader, other_lp]
    deposit = env.usd(1_000_000)
    refused(env, people, "vault: LP orders only", env.vault.deposit, deposit, 0, attacker, sender=attacker)
    start = wealth(env, attacker)
    before_push, _ = quote_deposit(env, deposit)  # what a direct deposit would have minted
    oid = env.orders.create_deposit_order(deposit, 0, FEE, sender=attacker).return_value
    pushed = SEED * 97 // 100
    push_all(env, pushed)
    shares, _ = quote_deposit(env, deposit)
    assert shares < before_push  # the pool gained the longs' loss before the shares were priced
    assert env.orders.execute_orders([oid], env.keeper, sender=env.keeper).return_value == (1, 0)
    assert env.vault.balanceOf(attacker) == shares

    after_cooldown(env, pushed)
    paid, _ = quote_redeem(env, shares)
    rid = env.orders.create_redeem_order(shares, 0, FEE, sender=attacker).return_value
    push_all(env, pushed)
    paid, _ = quote_redeem(env, shares)
    assert env.orders.execute_orders([rid], env.keeper, sender=env.keeper).return_value == (1, 0)
    assert env.vault.claimable(attacker) == paid
    assert_solvent(env)
    profit = wealth(env, attacker) - start
    assert profit == paid - deposit - 2 * FEE
    assert profit < 0


def test_attack__lp_redeem_before_a_known_price_push__not_profitable(env, lp, attacker, trader, other_lp):
    """The mirror image: an LP sees ETH rise 3 % before the keeper pushes it (the longs'
    profit is the pool's loss) and wants to leave at the value before the push. The direct
    redeem is refused; the redeem order is priced after the push: it bears its share of the
    loss like every other LP."""
    push_fresh(env, env.eth, SEED)
    pin(env)
    open_position(env, trader, env.eth, True, env.usd(100_000), 900_000 * WAD)
    after_cooldown(env)
    lp_orders_only(env)
    people = [lp, attacker, trader, other_lp]
    shares = env.vault.balanceOf(lp) // 10
    refused(env, people, "vault: LP orders only", env.vault.redeem, shares, 0, lp, sender=lp)
    before_push, _ = quote_redeem(env, shares)  # what a direct redeem would have paid
    oid = env.orders.create_redeem_order(shares, 0, FEE, sender=lp).return_value
    pushed = SEED * 103 // 100
    push_all(env, pushed)
    paid, _ = quote_redeem(env, shares)
    assert paid < before_push
    tx = env.orders.execute_orders([oid], env.keeper, sender=env.keeper)
    assert not tx.decode_logs(env.orders.OrderCancelled), tx.decode_logs(env.orders.OrderCancelled)[0].reason
    assert env.vault.claimable(lp) == paid
    assert_solvent(env)


def test_attack__lp_deposit_and_redeem_around_the_pnl_cap__refused_dilute_and_beyond_share(env, lp, attacker, trader, other_lp):
    """REFERENCE.md's audit class "LP deposit/withdraw arbitrage around PnL caps". The pool
    value caps traders' net profit at max_pnl_factor_bps (here 1 %) of the pool amount.
    A long's profit of ~$90k is over that cap: a deposit would add 1 % of itself to the
    counted liability (the share price falls: depositor and LPs lose), and a redeem would
    pay a share of a value that ignores the profit above the cap (a run on the pool). Both
    are refused with nothing moved; they pass again once the profit is back under the cap."""
    push_fresh(env, env.eth, SEED)
    pin(env)
    open_position(env, trader, env.eth, True, env.usd(100_000), 900_000 * WAD)
    env.configurator.set_max_pnl_factor(100, sender=env.configurator.admin())
    after_cooldown(env)
    up = SEED * 11 // 10
    push_fresh(env, env.eth, up)
    pin(env)
    pool_wad = env.vault.pool_amount() * env.scale
    profit = env.perp.position_values(trader, env.eth, True, up).pnl
    assert profit > pool_wad // 100  # over the cap: the pool value counts 1 % of the pool
    people = [lp, attacker, trader, other_lp]
    refused(env, people, "vault: deposit would dilute", env.vault.deposit, env.usd(1_000_000), 0, attacker, sender=attacker)
    refused(env, people, "vault: redeem beyond its share", env.vault.redeem, env.vault.balanceOf(lp) // 20, 0, lp, sender=lp)

    push_fresh(env, env.eth, SEED)  # the profit gone: both flows pass at the formulas
    pin(env)
    shares, _ = quote_deposit(env, env.usd(1_000_000))
    assert env.vault.deposit(env.usd(1_000_000), 0, attacker, sender=attacker).return_value == shares
    redeemed = env.vault.balanceOf(lp) // 20
    paid, _ = quote_redeem(env, redeemed)
    assert env.vault.redeem(redeemed, 0, lp, sender=lp).return_value == paid
    assert_solvent(env)


def test_attack__trader_flash_lp_around_own_close__not_profitable(env, trader, chain):
    """A trader about to close $500k (a $500 close fee) first deposits $5M of LP, so that
    most of the fee comes back through its shares, then redeems after the cooldown.
    The two LP fees (10 bps each on $5M) cost more than the share of the close fee it
    recoups: compared with a plain close at the same second, it ends poorer, by exactly
    the Vault's formulas."""
    env.fund(trader, 5_000_000)
    push_fresh(env, env.eth, SEED)
    pin(env)
    open_position(env, trader, env.eth, True, env.usd(50_000), 500_000 * WAD)
    t = hold_time(env)  # every step below at this second: views and calls alike
    with isolated(chain):  # the honest way: just close, at the same second
        pin(env, t)
        close_position(env, trader, env.eth, True)
        honest = wealth(env, trader)
    pin(env, t)
    deposit = env.usd(5_000_000)
    shares, _ = quote_deposit(env, deposit)
    assert env.vault.deposit(deposit, 0, trader, sender=trader).return_value == shares
    pin(env, t)
    close_position(env, trader, env.eth, True)
    after_cooldown(env)  # no open interest is left: the pool value stands still
    paid, _ = quote_redeem(env, shares)
    assert env.vault.redeem(shares, 0, trader, sender=trader).return_value == paid
    assert wealth(env, trader) == honest - deposit + paid
    assert paid < deposit
    assert_solvent(env)
