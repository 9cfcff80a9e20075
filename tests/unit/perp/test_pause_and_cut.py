"""Configurator.set_paused and the insurance fund's cut of position fees.

Pause: the admin or the pauser stops opening and increasing positions in Perp ("perp:
paused") and LP deposits in the Vault ("vault: paused"). Nothing that takes risk off is ever
paused: closing, partial decreases, collateral withdrawals (while healthy), adding
collateral, liquidation (its keeper fee credited in the Vault, claimable while paused) and
LP redemption all go through, with the amounts of helpers.py's model. (ADL while paused is
tested with the RiskEngine.)

Insurance cut (a protocol with params.RISK_CONFIG, insurance_cut_bps = 10 %): on every
open, increase, partial decrease and close the fund takes floor(position_fee * cut / 10_000)
of the position fee (never of the borrowing fee) and the pool the rest of the fees:
    insurance += cut,   pool += model pool delta - cut
A full close with a shortfall collects no fee, so it takes no cut: the fund pays the
shortfall first (min(shortfall, fund)) and the LPs the rest.
"""

from __future__ import annotations

import ape
import pytest
from helpers import (
    BPS,
    MAX_UINT,
    Position,
    Refused,
    WAD,
    bps_of,
    buckets,
    build_env,
    ceil_div,
    config_of,
    elapse,
    expect_update,
    fast_reverts,  # noqa: F401 (autouse fixture)
    health,
    indices_used,
    left_of,
    liquidation_fee,
    open_position,
    pin,
    predict_decrease,
    predict_increase,
    push_fresh,
    risk_of,
    state_of,
    to_tokens,
)

from perpool import params

BASE = params.LOCAL_MARKETS["ETH"]  # the seeded price, anchor of the oracle's window
ODD = 12_345_678_901_234_567  # wei of price that make every rounding matter
OPEN_PRICE = BASE + ODD
# moves of at most 1.99 % from the anchor: under the 2 % spread threshold, so min == max
UP_PRICE = BASE * 10_190 // BPS + ODD // 3
DOWN_PRICE = BASE * 9_810 // BPS - ODD // 3
CRASH_PRICE = BASE * 9_801 // BPS  # 1.99 % down: a 47x long loses more than it holds
SIDES = pytest.mark.parametrize("is_long", [True, False], ids=["long", "short"])


@pytest.fixture(scope="module")
def cut_env(project, deployer, keeper, lp, chain):
    """The default risk settings: a 10 % insurance cut."""
    assert params.RISK_CONFIG["insurance_cut_bps"] == 1_000
    return build_env(project, deployer, keeper, lp, chain, 6, risk_config=params.RISK_CONFIG)


@pytest.fixture(scope="module")
def cut_trader(cut_env, trader):
    cut_env.fund(trader)
    return trader


@pytest.fixture(scope="module")
def pauser(accounts):
    return accounts[8]


@pytest.fixture(scope="module")
def liquidator(accounts):
    return accounts[9]


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(
    env, cut_env, funded_trader, cut_trader, counterparty, pauser, liquidator, deployer
):
    """Create the module-scoped deploys before any test (Ape's isolation never rebases)."""
    env.configurator.set_pauser(pauser, sender=deployer)


# ---------------------------------------------------------------- helpers

# ---------------------------------------------------------------- helpers


def full_state(env, accounts):
    """state_of plus the LP shares, the pause flags and the market statuses."""
    vault, configurator, perp = env.vault, env.configurator, env.perp
    return (
        state_of(env, accounts),
        (vault.totalSupply(), [vault.balanceOf(a) for a in accounts]),
        (vault.paused(), configurator.paused(), configurator.pauser()),
        [(perp.market_status(m), perp.settlement_price(m)) for m in env.markets.values()],
    )


def refused(env, reason, call, *args, sender, others=()):
    """`call` sent by `sender` reverts with exactly `reason` and changes nothing."""
    accounts = (sender, *others)
    before = full_state(env, accounts)
    with ape.reverts(reason):
        call(*args, sender=sender)
    assert full_state(env, accounts) == before


def grow(env, is_long, collateral, size, market=None, *, sender):
    """Open or increase at whatever the oracle price is."""
    market = env.eth if market is None else market
    worst = MAX_UINT if is_long else 0
    return env.perp.increase_position(market, is_long, collateral, size, worst, sender=sender)


def opened(env, account, is_long, collateral, size, price=OPEN_PRICE):
    push_fresh(env, env.eth, price)
    pin(env)
    open_position(env, account, env.eth, is_long, collateral, size)
    return Position.of(env.perp.get_position(account, env.eth, is_long))


def money(env, account):
    return buckets(env.vault), env.token.balanceOf(account), env.token.balanceOf(env.vault)


def decrease(env, is_long, collateral_delta, size_delta, *, sender):
    worst = 0 if is_long else MAX_UINT
    return env.perp.decrease_position(
        env.eth, is_long, collateral_delta, size_delta, worst, sender, sender=sender
    )


def model_increase(env, pos, is_long, collateral_delta, size_delta, price):
    """The model's change for an increase just sent, with the indices it settled with."""
    cfg, idx = config_of(env.configurator, env.eth), indices_used(env, env.eth)
    return predict_increase(pos, is_long, collateral_delta, size_delta, price, idx, cfg, env.scale)


def model_decrease(env, pos, is_long, collateral_delta, size_delta, price):
    """The model's change for a decrease just sent, with the indices it settled with."""
    cfg, idx = config_of(env.configurator, env.eth), indices_used(env, env.eth)
    return predict_decrease(pos, is_long, collateral_delta, size_delta, price, idx, cfg, env.scale)


def assert_change(env, tx, change, account, is_long, before, cut=0):
    """Position, log, buckets (the fund's cut moved from the pool) and balances as modelled."""
    (pool, collateral, escrow, insurance), account_tokens, vault_tokens = before
    assert Position.of(env.perp.get_position(account, env.eth, is_long)) == change.position
    [log] = tx.decode_logs(env.perp.PositionUpdate)
    expect_update(log, change, account, env.eth, is_long)
    pool += change.pool_delta - cut
    collateral += change.collateral_delta
    assert buckets(env.vault) == (pool, collateral, escrow, insurance + cut)
    flow = change.amount_out - change.collateral_in
    assert env.token.balanceOf(account) == account_tokens + flow
    assert env.token.balanceOf(env.vault) == vault_tokens - flow
    assert env.vault.reserved_amount() == to_tokens(env.reader.total_reserved_usd(), env.scale, True)
    assert env.vault.is_solvent()


def pause(env, who):
    tx = env.configurator.set_paused(True, sender=who)
    assert env.perp.paused() and env.vault.paused() and env.configurator.paused()
    return tx


# ---------------------------------------------------------------- set_paused


@pytest.mark.parametrize("role", ["admin", "pauser"])
def test_set_paused__admin_or_pauser__pauses_perp_and_vault_and_logs(env, deployer, pauser, role):
    who = deployer if role == "admin" else pauser
    tx = pause(env, who)

    def logs_of(contract):
        # the Configurator's and the Vault's PausedSet share a signature: tell them by emitter
        logs = tx.decode_logs(contract.PausedSet)
        return [log for log in logs if log.contract_address == contract.address]

    [log] = logs_of(env.configurator)
    assert (log.account, log.paused) == (who.address, True)
    [log] = logs_of(env.perp)
    assert log.paused
    [log] = logs_of(env.vault)
    assert (log.account, log.paused) == (env.configurator.address, True)


def test_set_paused__stranger_pauses_or_pauser_unpauses__refused(
    env, attacker, pauser, deployer, funded_trader
):
    set_paused = env.configurator.set_paused
    refused(env, "config: not pauser", set_paused, True, sender=attacker)
    pause(env, pauser)
    for who in (pauser, attacker):
        refused(env, "config: not admin", set_paused, False, sender=who)
    # the admin resumes trading
    set_paused(False, sender=deployer)
    assert not (env.perp.paused() or env.vault.paused() or env.configurator.paused())
    assert opened(env, funded_trader, True, env.usd(1_000), 10_000 * WAD).size_usd == 10_000 * WAD


# ---------------------------------------------------------------- refused while paused


@pytest.mark.parametrize("role", ["admin", "pauser"])
@SIDES
def test_increase__paused__open_and_increase_refused_in_every_market(
    env, funded_trader, counterparty, deployer, pauser, role, is_long
):
    opened(env, funded_trader, is_long, env.usd(1_000), 10_000 * WAD)
    pause(env, deployer if role == "admin" else pauser)
    push_fresh(env, env.eth, OPEN_PRICE)
    pin(env)
    # increasing the open position, with and without more collateral
    for collateral in (0, env.usd(100)):
        args = (env, is_long, collateral, 1_000 * WAD)
        refused(env, "perp: paused", grow, *args, sender=funded_trader, others=(counterparty,))
    # opening anew, in either market
    for market in (env.eth, env.btc):
        args = (env, is_long, env.usd(1_000), 10_000 * WAD, market)
        refused(env, "perp: paused", grow, *args, sender=counterparty, others=(funded_trader,))


def test_increase__market_listed_while_paused_or_pause_repeated__refused_until_resumed(
    env, funded_trader, counterparty, deployer, pauser
):
    # Perp copies the pause into every market's settings word (the bit its trades read):
    # a market listed during a pause starts paused, and a repeated pause or resume changes
    # nothing
    pause(env, pauser)
    pause(env, deployer)
    env.oracle.add_market("SOL", sender=deployer)
    sol = env.oracle.market_count()
    env.configurator.add_market(sol, params.MARKET_CONFIG, params.RISK_CONFIG, sender=deployer)
    push_fresh(env, sol, BASE)
    push_fresh(env, env.eth, OPEN_PRICE)
    pin(env)
    for market in (env.eth, sol):
        args = (env, True, env.usd(1_000), 10_000 * WAD, market)
        refused(env, "perp: paused", grow, *args, sender=counterparty, others=(funded_trader,))
    env.configurator.set_paused(False, sender=deployer)
    env.configurator.set_paused(False, sender=deployer)
    assert not env.perp.paused()
    for market in (env.eth, sol):
        grow(env, True, env.usd(1_000), 10_000 * WAD, market, sender=counterparty)
        assert env.perp.get_position(counterparty, market, True).size_usd == 10_000 * WAD


def test_deposit__paused__refused_vault_paused(env, lp, pauser):
    pause(env, pauser)
    refused(env, "vault: paused", env.vault.deposit, env.usd(1_000), 0, lp, sender=lp)


# ---------------------------------------------------------------- allowed while paused


@SIDES
def test_decrease__paused__partial_close_then_full_close_pay_as_model(
    env, funded_trader, pauser, is_long
):
    trader = funded_trader
    pos = opened(env, trader, is_long, env.usd(2_000) + 333_333, 30_000 * WAD + 123_456_789)
    pause(env, pauser)
    price = UP_PRICE if is_long else DOWN_PRICE  # in profit
    push_fresh(env, env.eth, price)
    pin(env)
    before = money(env, trader)
    tx = decrease(env, is_long, env.usd(150), 10_000 * WAD, sender=trader)
    change = model_decrease(env, pos, is_long, env.usd(150), 10_000 * WAD, price)
    assert change.pnl > 0 and change.amount_out > env.usd(150)
    assert tx.return_value == change.amount_out
    assert_change(env, tx, change, trader, is_long, before)

    pos = change.position
    push_fresh(env, env.eth, OPEN_PRICE)
    pin(env)
    before = money(env, trader)
    tx = decrease(env, is_long, 0, pos.size_usd, sender=trader)
    change = model_decrease(env, pos, is_long, 0, pos.size_usd, OPEN_PRICE)
    assert tx.return_value == change.amount_out > 0
    assert_change(env, tx, change, trader, is_long, before)
    assert env.perp.open_interest(env.eth, is_long) == (0, 0)


@SIDES
def test_decrease__paused__collateral_withdrawal_while_healthy_pays_as_model(
    env, funded_trader, deployer, is_long
):
    trader = funded_trader
    pos = opened(env, trader, is_long, env.usd(1_000), 10_000 * WAD)
    pause(env, deployer)
    push_fresh(env, env.eth, OPEN_PRICE)
    pin(env)
    before = money(env, trader)
    tx = decrease(env, is_long, env.usd(400), 0, sender=trader)
    change = model_decrease(env, pos, is_long, env.usd(400), 0, OPEN_PRICE)
    assert change.amount_out == env.usd(400)
    assert_change(env, tx, change, trader, is_long, before)
    # the pause loosens no check: a withdrawal past the limits is refused as ever
    pos, too_much = change.position, change.position.collateral - env.usd(150)
    with pytest.raises(Refused) as model:
        model_decrease(env, pos, is_long, too_much, 0, OPEN_PRICE)
    assert model.value.reason == "perp: leverage too high"
    refused(env, model.value.reason, decrease, env, is_long, too_much, 0, sender=trader)


@SIDES
def test_increase__paused__adding_collateral_allowed(env, funded_trader, pauser, is_long):
    pos = opened(env, funded_trader, is_long, env.usd(1_000), 10_000 * WAD)
    pause(env, pauser)
    push_fresh(env, env.eth, OPEN_PRICE)
    pin(env)
    before = money(env, funded_trader)
    tx = grow(env, is_long, env.usd(250) + 7, 0, sender=funded_trader)
    change = model_increase(env, pos, is_long, env.usd(250) + 7, 0, 0)  # reads no price
    assert change.position.collateral == pos.collateral + env.usd(250) + 7 - change.borrow_fee
    assert_change(env, tx, change, funded_trader, is_long, before)


def test_liquidate__paused__unhealthy_position_liquidated_fee_to_receiver(
    env, funded_trader, pauser, liquidator
):
    cfg = config_of(env.configurator, env.eth)
    risk = risk_of(env.configurator, env.eth)
    size = 4_500 * WAD  # 45x: a 1.9 % fall takes it below maintenance
    pos = opened(env, funded_trader, True, env.usd(100), size)
    pause(env, pauser)
    push_fresh(env, env.eth, DOWN_PRICE)
    pin(env)
    assert env.perp.is_liquidatable(funded_trader, env.eth, True)
    pool, collateral, escrow, insurance = buckets(env.vault)
    receiver_tokens = env.token.balanceOf(liquidator)
    claimable, claimable_total = env.vault.claimable(liquidator), env.vault.claimable_amount()

    tx = env.perp.liquidate(funded_trader, env.eth, True, liquidator, sender=liquidator)

    idx = indices_used(env, env.eth)
    remaining, maintenance = health(pos, True, DOWN_PRICE, idx, cfg, env.scale)
    assert remaining < maintenance
    left = left_of(pos, True, DOWN_PRICE, idx, cfg, env.scale)
    fee = liquidation_fee(size, risk, env.scale)
    assert left >= fee  # the position pays its liquidator in full
    [log] = tx.decode_logs(env.perp.Liquidation)
    assert (log.account, log.fee_receiver) == (funded_trader.address, liquidator.address)
    assert (log.price, log.remaining, log.maintenance) == (DOWN_PRICE, remaining, maintenance)
    assert (log.fee, log.fee_from_insurance, log.insurance_cut) == (fee, 0, 0)
    assert env.perp.get_position(funded_trader, env.eth, True).size_usd == 0
    pool += pos.collateral - fee
    assert buckets(env.vault) == (pool, collateral - pos.collateral, escrow, insurance)
    # the fee is credited in the Vault, not transferred
    assert env.token.balanceOf(liquidator) == receiver_tokens
    assert env.vault.claimable(liquidator) == claimable + fee
    assert env.vault.claimable_amount() == claimable_total + fee
    assert env.vault.is_solvent()
    # claiming is never paused: the liquidator collects its fee while the Vault is paused
    assert env.vault.paused()
    pin(env)
    assert env.vault.claim(liquidator, sender=liquidator).return_value == claimable + fee
    assert env.token.balanceOf(liquidator) == receiver_tokens + claimable + fee
    assert env.vault.claimable(liquidator) == 0
    assert env.vault.claimable_amount() == claimable_total - claimable
    assert env.vault.is_solvent()


def test_redeem__paused__lp_redeems_within_reserves(env, funded_trader, lp, pauser):
    opened(env, funded_trader, True, env.usd(1_000), 20_000 * WAD)
    elapse(env, env.vault.cooldown() + 1, env.eth, OPEN_PRICE)  # past the LP's cooldown
    pause(env, pauser)
    pin(env)
    vault = env.vault
    shares = vault.balanceOf(lp) // 10
    value, supply = vault.pool_value(False), vault.totalSupply()
    gross = shares * value // supply // env.scale
    amount = gross - ceil_div(gross * vault.burn_fee_bps(), BPS)
    assert vault.pool_amount() - amount >= vault.reserved_amount() > 0
    pool, lp_tokens = vault.pool_amount(), env.token.balanceOf(lp)

    tx = vault.redeem(shares, 0, lp, sender=lp)

    assert tx.return_value == amount
    assert vault.pool_amount() == pool - amount
    assert env.token.balanceOf(lp) == lp_tokens + amount
    assert vault.totalSupply() == supply - shares
    assert vault.is_solvent()


# ---------------------------------------------------------------- insurance cut of position fees


def cut_of(env, fee):
    return bps_of(fee, env.configurator.risk_configs(env.eth).insurance_cut_bps, False)


@SIDES
def test_increase__insurance_cut__open_and_increase_cut_floor_of_position_fee(
    cut_env, cut_trader, is_long
):
    env, trader = cut_env, cut_trader
    size, collateral = 30_000 * WAD + 123_456_789, env.usd(2_000)
    push_fresh(env, env.eth, OPEN_PRICE)
    pin(env)
    before = money(env, trader)
    tx = grow(env, is_long, collateral, size, sender=trader)
    change = model_increase(env, Position(), is_long, collateral, size, OPEN_PRICE)
    cut = cut_of(env, change.position_fee)
    assert change.position_fee % 10 != 0  # the floor matters
    assert cut == change.position_fee * 1_000 // BPS > 0
    assert_change(env, tx, change, trader, is_long, before, cut)

    # an increase a second later also settles borrowing: the cut is of the position fee only
    pos, size = change.position, 7_777 * WAD + 1
    push_fresh(env, env.eth, OPEN_PRICE)
    pin(env)
    before = money(env, trader)
    tx = grow(env, is_long, env.usd(100), size, sender=trader)
    change = model_increase(env, pos, is_long, env.usd(100), size, OPEN_PRICE)
    assert change.borrow_fee > 0 and change.position_fee % 10 != 0
    assert_change(env, tx, change, trader, is_long, before, cut_of(env, change.position_fee))


@SIDES
def test_decrease__insurance_cut__partial_decrease_and_close_cut_floor_of_position_fee(
    cut_env, cut_trader, is_long
):
    env, trader = cut_env, cut_trader
    pos = opened(env, trader, is_long, env.usd(2_000), 30_003 * WAD + WAD // 3)
    # partial decrease at a loss, collateral withdrawn
    price, size = (DOWN_PRICE if is_long else UP_PRICE), 12_345 * WAD + 6_789
    push_fresh(env, env.eth, price)
    pin(env)
    before = money(env, trader)
    tx = decrease(env, is_long, env.usd(100), size, sender=trader)
    change = model_decrease(env, pos, is_long, env.usd(100), size, price)
    assert change.pnl < 0 and change.position_fee % 10 != 0
    assert_change(env, tx, change, trader, is_long, before, cut_of(env, change.position_fee))

    # full close in profit
    pos = change.position
    price = UP_PRICE if is_long else DOWN_PRICE
    push_fresh(env, env.eth, OPEN_PRICE)
    push_fresh(env, env.eth, price)
    pin(env)
    before = money(env, trader)
    tx = decrease(env, is_long, 0, pos.size_usd, sender=trader)
    change = model_decrease(env, pos, is_long, 0, pos.size_usd, price)
    assert change.pnl > 0 and change.bad_debt == 0 and change.position_fee % 10 != 0
    assert_change(env, tx, change, trader, is_long, before, cut_of(env, change.position_fee))


@pytest.mark.parametrize("fund", ["covers", "short"])
def test_decrease__insurance_cut__close_with_shortfall_takes_no_cut(
    cut_env, cut_trader, deployer, fund
):
    """The fund pays min(shortfall, fund) and takes no cut; the LPs pay the rest."""
    env, trader = cut_env, cut_trader
    if fund == "covers":
        env.fund(deployer, 1_000)
        env.vault.fund_insurance(env.usd(1_000), sender=deployer)
    pos = opened(env, trader, True, env.usd(100), 4_700 * WAD)  # 47x
    push_fresh(env, env.eth, CRASH_PRICE)
    pin(env)
    (pool, collateral, escrow, insurance), _, vault_tokens = money(env, trader)
    bad_debt_before = env.perp.bad_debt_total()
    assert insurance > 0  # at least the open's cut

    tx = decrease(env, True, 0, pos.size_usd, sender=trader)

    change = model_decrease(env, pos, True, 0, pos.size_usd, CRASH_PRICE)
    shortfall = change.bad_debt
    cover = min(shortfall, insurance)
    assert shortfall > 0 and change.amount_out == tx.return_value == 0
    assert (cover == shortfall) == (fund == "covers")
    [log] = tx.decode_logs(env.perp.BadDebt)
    assert (log.shortfall, log.from_insurance, log.from_lps) == (
        shortfall,
        cover,
        shortfall - cover,
    )
    # no cut: the fund only pays the cover; the pool keeps the collateral and the cover
    pool += pos.collateral + cover
    assert buckets(env.vault) == (pool, collateral - pos.collateral, escrow, insurance - cover)
    assert env.perp.bad_debt_total() == bad_debt_before + shortfall - cover
    assert env.token.balanceOf(env.vault) == vault_tokens
    assert env.vault.is_solvent()
