"""Attack catalogue: trading. Front-running a known price, free looks through order
updates, self-liquidation, liquidation at a stale price, funding games, ADL abuse and the
pause. Amounts come from the reference model (tests/unit/perp/helpers.py) or from the
contract's own events checked against it.

Cases:
  test_attack__front_run_known_price_with_direct_fills_off__refused_and_only_fees_lost
  test_attack__free_look_by_updating_a_met_order__refused_trigger_already_met
  test_attack__self_liquidation__not_profitable
  test_attack__hedged_pair_across_a_price_gap__not_profitable
  test_attack__liquidation_at_a_stale_price__refused_stale_price
  test_attack__liquidate_a_healthy_position__refused_position_healthy
  test_attack__funding_manipulation_by_skewing_open_interest__not_profitable
  test_attack__funding_larger_than_collateral__refused_then_liquidated_shortfall_booked
  test_attack__adl_when_not_required__refused_adl_not_triggered
  test_attack__adl_on_a_losing_position__refused_position_not_profitable
  test_attack__adl_overshooting_the_target__clamped_then_refused_not_triggered
  test_attack__adl_by_a_stranger_through_perp__refused_not_deleverager
  test_attack__open_deposit_or_order_while_paused__refused_paused
  test_attack__pending_order_filled_while_paused__stays_pending_paused
  test_attack__pauser_lifts_the_pause__refused_not_admin
  test_attack__pause_to_trap_users__exits_stay_open
"""

from __future__ import annotations

import ape
import pytest

from attack_kit import assert_solvent, hold_time, quote_redeem, refused, wealth
from helpers import (
    MAX_UINT,
    WAD,
    Position,
    build_env,
    close_position,
    config_of,
    elapse,
    indices_used,
    left_of,
    liquidation_fee,
    open_position,
    pin,
    pnl_tokens,
    position_fee,
    push_fresh,
    risk_of,
    tokens_for,
)
from orders_helpers import FEE, LIMIT_INCREASE, MARKET_DECREASE, MARKET_INCREASE, execute, land, place
from chain_isolation import isolated

SEED = 3_000 * WAD
PER_HOUR = WAD // 3_600


@pytest.fixture(scope="module")
def env(project, deployer, keeper, lp, chain, attacker, trader, accounts):
    e = build_env(project, deployer, keeper, lp, chain, 6)
    for who in (attacker, trader, accounts[7], accounts[8]):
        e.fund(who, 2_000_000)
    push_fresh(e, e.eth, SEED)
    return e


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, deployer, attacker, keeper, trader, lp, accounts):
    """Module fixtures before any test (Ape's isolation never rebases a snapshot)."""


@pytest.fixture
def victim(accounts):
    return accounts[7]


@pytest.fixture
def people(attacker, trader, lp, accounts):
    return [attacker, trader, lp, accounts[7], accounts[8]]


def at_seed(env):
    push_fresh(env, env.eth, SEED)
    return hold_time(env)


def cfg_of(env):
    return config_of(env.configurator, env.eth)


# ---------------------------------------------------------------- knowing the price


def test_attack__front_run_known_price_with_direct_fills_off__refused_and_only_fees_lost(env, attacker, people, deployer, keeper):
    """The attacker sees ETH +1.5 % on an exchange before the keeper pushes it. With
    direct fills off it cannot open at the stored price; its order fills only at a price
    observed after the order, i.e. the one it knew: it loses the fees, to the unit."""
    env.configurator.set_direct_fills(env.eth, False, sender=deployer)
    at_seed(env)
    known = SEED * 10_150 // 10_000
    size, collateral = 20_000 * WAD, env.usd(2_000)
    refused(env, people, "perp: direct fills off", env.perp.increase_position, env.eth, True, collateral, size, MAX_UINT, sender=attacker)
    start = wealth(env, attacker)
    opening, _ = place(env, attacker, MARKET_INCREASE, True, collateral, size)
    with ape.reverts("orders: price not newer than order"):  # the stored price is not used
        env.orders.execute_order(opening, keeper, sender=keeper)
    land(env, env.eth, known)
    execute(env, [opening], keeper)
    assert env.perp.get_position(attacker, env.eth, True).size_tokens == tokens_for(size, known, True)
    closing, _ = place(env, attacker, MARKET_DECREASE, True, 0, size)
    land(env, env.eth, known)
    close = execute(env, [closing], keeper).decode_logs(env.perp.PositionUpdate)[0]
    env.vault.claim(attacker, sender=attacker)
    fees = 2 * position_fee(size, cfg_of(env)["position_fee_bps"], env.scale) + 2 * FEE + close.borrow_fee - close.funding
    rounding = pnl_tokens(size, tokens_for(size, known, True), known, True, env.scale)
    assert rounding <= 0
    assert wealth(env, attacker) - start == rounding - fees < 0
    assert_solvent(env)


def test_attack__free_look_by_updating_a_met_order__refused_trigger_already_met(env, attacker, people, keeper, chain):
    """An audit class of GMX v2: a pending order updated after its owner saw the price
    that will fill it (here: five times the size once the limit price is reached). An
    update must not already be met at the current price; and any update restarts the
    order's clock, so the price already seen cannot fill the updated order."""
    at_seed(env)
    order, _ = place(env, attacker, LIMIT_INCREASE, True, env.usd(2_000), 20_000 * WAD, trigger=SEED * 99 // 100)
    land(env, env.eth, SEED * 98 // 100)  # the limit is reached; the keeper has not filled it yet
    before = tuple(env.orders.get_order(order))
    refused(env, people, "orders: trigger already met", env.orders.update_order, order, 100_000 * WAD, MAX_UINT, SEED * 99 // 100, sender=attacker)
    assert tuple(env.orders.get_order(order)) == before
    with isolated(chain):  # an update the price has not met yet: accepted, clock restarted
        env.orders.update_order(order, 100_000 * WAD, MAX_UINT, SEED * 97 // 100, sender=attacker)
        assert env.orders.get_order(order).price_floor >= env.oracle.price_timestamp(env.eth)
        with ape.reverts("orders: price not newer than order"):
            env.orders.execute_order(order, keeper, sender=keeper)
    execute(env, [order], keeper)  # the order fills as placed, at the price it waited for
    assert env.perp.get_position(attacker, env.eth, True).size_usd == 20_000 * WAD


# ---------------------------------------------------------------- liquidation


def test_attack__self_liquidation__not_profitable(env, attacker, chain):
    """A 40x long 2 % under water is liquidatable with equity left. Liquidating itself
    pays the attacker the keeper fee (computed by the model); closing at that moment would
    have paid what is left, which is more: the fee never exceeds the equity it comes from."""
    at_seed(env)
    start = wealth(env, attacker)
    collateral, size = env.usd(2_500), 100_000 * WAD
    open_position(env, attacker, env.eth, True, collateral, size)
    push_fresh(env, env.eth, SEED * 98 // 100)  # exactly 2 %: no spread
    t = hold_time(env)
    assert env.perp.is_liquidatable(attacker, env.eth, True)
    pos = Position.of(env.perp.get_position(attacker, env.eth, True))
    with isolated(chain):
        pin(env, t)
        closed = close_position(env, attacker, env.eth, True).decode_logs(env.perp.PositionUpdate)[0]
        close_pays = closed.amount_out
        assert close_pays == left_of(pos, True, SEED * 98 // 100, indices_used(env, env.eth), cfg_of(env), env.scale)
    pin(env, t)
    env.perp.liquidate(attacker, env.eth, True, attacker, sender=attacker)
    fee = liquidation_fee(size, risk_of(env.configurator, env.eth), env.scale)
    assert env.vault.claimable(attacker) == fee
    assert fee <= close_pays
    assert wealth(env, attacker) - start == fee - collateral < 0
    assert_solvent(env)


def test_attack__hedged_pair_across_a_price_gap__not_profitable(env, attacker, lp):
    """The attacker holds a ~48x long and a ~48x short of $100k each (no net exposure) and
    waits for one push of the Oracle's per-push bound (-2 %). It closes the short in profit
    and liquidates its own long, whose loss beyond its collateral is bad debt. (Found with
    the old default, a 10 % bound: the attacker gained $7,477 and the LPs paid $8,365 of bad
    debt. The bound is now at most the initial margin at max leverage, which the Oracle and
    the Configurator enforce: tests/e2e/test_attacks_admin.py.)"""
    at_seed(env)
    start = wealth(env, attacker)
    size, collateral = 100_000 * WAD, env.usd(2_105)
    open_position(env, attacker, env.eth, True, collateral, size)
    open_position(env, attacker, env.eth, False, collateral, size)
    jump = env.oracle.config().max_jump_bps
    push_fresh(env, env.eth, SEED * (10_000 - jump) // 10_000)
    hold_time(env)
    bad_debt = env.perp.bad_debt_total()
    close_position(env, attacker, env.eth, False)
    env.perp.liquidate(attacker, env.eth, True, attacker, sender=attacker)
    env.vault.claim(attacker, sender=attacker)
    assert_solvent(env)
    profit = wealth(env, attacker) - start
    shortfall = env.perp.bad_debt_total() - bad_debt
    assert jump * 50 <= 10_000  # the default bound: the initial margin at 50x
    assert profit < 0, f"hedged pair made {profit / env.unit:,.2f} USD; LPs absorbed {shortfall / env.unit:,.2f} USD"
    print(f"hedged pair at the bound: attacker {profit / env.unit:,.2f} USD, bad debt {shortfall / env.unit:,.2f} USD")


def liquidatable_long(env, owner):
    at_seed(env)
    open_position(env, owner, env.eth, True, env.usd(2_500), 100_000 * WAD)
    push_fresh(env, env.eth, SEED * 98 // 100)
    hold_time(env)
    assert env.perp.is_liquidatable(owner, env.eth, True)


def test_attack__liquidation_at_a_stale_price__refused_stale_price(env, victim, attacker, people, project, deployer):
    """The keeper is down and the attacker knows the market moved back up: liquidating at
    the last (stale) price is refused, even where a reference feed gives an exit price
    (liquidation takes only a fresh keeper price); the batch path too."""
    liquidatable_long(env, victim)
    feed = deployer.deploy(project.TestFeed, 8)
    feed.set_answer(SEED * 98 // 100 // 10**10, 0, sender=deployer)
    env.oracle.set_reference_feed(env.eth, feed, 86_400, sender=deployer)
    pin(env, env.oracle.price_timestamp(env.eth) + env.oracle.config().max_price_age + 1)
    refused(env, people, "oracle: stale price", env.perp.liquidate, victim, env.eth, True, attacker, sender=attacker)
    refused(env, people, "oracle: stale price", env.perp.liquidate_batch, [(victim, env.eth, True)], attacker, sender=attacker)


def test_attack__liquidate_a_healthy_position__refused_position_healthy(env, victim, attacker, people):
    at_seed(env)
    open_position(env, victim, env.eth, True, env.usd(2_500), 100_000 * WAD)
    hold_time(env)
    refused(env, people, "perp: position healthy", env.perp.liquidate, victim, env.eth, True, attacker, sender=attacker)
    assert env.perp.liquidate_batch([(victim, env.eth, True)], attacker, sender=attacker).return_value == 0


# ---------------------------------------------------------------- funding


def max_funding(env, deployer):
    """Funding at the Configurator's ceiling (1 %/h at full skew), to make it visible."""
    c = {**cfg_of(env), "funding_factor": PER_HOUR // 100, "max_funding_rate": PER_HOUR // 100}
    env.configurator.set_market_config(env.eth, c, sender=deployer)


def test_attack__funding_manipulation_by_skewing_open_interest__not_profitable(env, attacker, victim, deployer, chain):
    """A victim is long $200k; the attacker is short $20k and receives its funding. To
    raise the rate, the attacker also goes long $200k (more skew). A receiver gets at most
    10x the payers' rate per USD, and the attacker's own long pays the higher rate: over
    an hour it ends poorer than by just holding its short."""
    max_funding(env, deployer)
    at_seed(env)
    open_position(env, victim, env.eth, True, env.usd(20_000), 200_000 * WAD)
    open_position(env, attacker, env.eth, False, env.usd(2_000), 20_000 * WAD)
    t = hold_time(env)

    def hour_then_close(skew: bool) -> tuple[int, int]:
        start = wealth(env, attacker)
        pin(env, t + 1)
        if skew:
            open_position(env, attacker, env.eth, True, env.usd(20_000), 200_000 * WAD)
        elapse(env, 3_600, env.eth, SEED)
        pin(env)
        funding = close_position(env, attacker, env.eth, False).decode_logs(env.perp.PositionUpdate)[0].funding
        if skew:
            funding += close_position(env, attacker, env.eth, True).decode_logs(env.perp.PositionUpdate)[0].funding
        return wealth(env, attacker) - start, funding

    with isolated(chain):
        honest, honest_funding = hour_then_close(False)
    skewed, skewed_funding = hour_then_close(True)
    assert honest_funding > 0  # the short did receive funding
    assert skewed_funding < honest_funding
    assert skewed < honest
    assert_solvent(env)


def test_attack__funding_larger_than_collateral__refused_then_liquidated_shortfall_booked(env, attacker, victim, people, deployer, keeper):
    """A 10x long pays funding at ~0.8 %/h; after 20 hours (a keeper outage, then a push)
    it owes more than its collateral. It can neither grow nor withdraw; a liquidation
    closes it and the shortfall the model predicts is booked as bad debt (the insurance
    fund first, then the LPs), the Vault staying solvent."""
    max_funding(env, deployer)
    at_seed(env)
    open_position(env, attacker, env.eth, True, env.usd(10_000), 100_000 * WAD)
    open_position(env, victim, env.eth, False, env.usd(10_000), 10_000 * WAD)
    t = env.chain.blocks.head.timestamp + 20 * 3_600
    pin(env, t)
    env.oracle.set_prices([env.eth], [SEED], t, sender=keeper)  # the outage ends: spread on
    hold_time(env)
    refused(env, people, "perp: fees exceed collateral", env.perp.increase_position, env.eth, True, 0, 1_000 * WAD, MAX_UINT, sender=attacker)
    refused(env, people, "perp: insufficient collateral", env.perp.decrease_position, env.eth, True, env.usd(1), 0, 0, attacker, sender=attacker)
    pos = Position.of(env.perp.get_position(attacker, env.eth, True))
    bad_debt, insurance = env.perp.bad_debt_total(), env.vault.insurance_amount()
    tx = env.perp.liquidate(attacker, env.eth, True, keeper, sender=keeper)
    price = tx.decode_logs(env.perp.Liquidation)[0].price
    left = left_of(pos, True, price, indices_used(env, env.eth), cfg_of(env), env.scale)
    assert left < 0
    booked = tx.decode_logs(env.perp.BadDebt)[0]
    assert booked.shortfall == -left
    assert booked.from_insurance == min(-left, insurance) and booked.from_lps == -left - booked.from_insurance
    assert env.perp.bad_debt_total() == bad_debt + booked.from_lps
    assert_solvent(env)


# ---------------------------------------------------------------- ADL


def adl_risk(env, deployer):
    """ADL from a 1 % pnl factor down to 0.5 % (so a 10 % move of $500k triggers it)."""
    r = {**risk_of(env.configurator, env.eth), "max_pnl_factor_for_adl_bps": 100, "min_pnl_factor_after_adl_bps": 50}
    env.configurator.set_risk_config(env.eth, r, sender=deployer)


def test_attack__adl_when_not_required__refused_adl_not_triggered(env, victim, attacker, people, deployer):
    adl_risk(env, deployer)
    at_seed(env)
    open_position(env, victim, env.eth, True, env.usd(50_000), 500_000 * WAD)
    push_fresh(env, env.eth, SEED * 1_005 // 1_000)  # +0.5 %: a 0.25 % factor
    hold_time(env)
    assert not env.risk.adl_state(env.eth, True).triggered
    refused(env, people, "risk: adl not triggered", env.risk.auto_deleverage, victim, env.eth, True, 500_000 * WAD, sender=attacker)


def pumped(env, deployer, winner, loser):
    """The winner long $500k from SEED, +10 %; the loser long $100k opened after it."""
    adl_risk(env, deployer)
    at_seed(env)
    open_position(env, winner, env.eth, True, env.usd(50_000), 500_000 * WAD)
    push_fresh(env, env.eth, SEED * 11 // 10)
    hold_time(env)
    open_position(env, loser, env.eth, True, env.usd(10_000), 100_000 * WAD)
    hold_time(env)
    assert env.risk.adl_state(env.eth, True).triggered


def test_attack__adl_on_a_losing_position__refused_position_not_profitable(env, victim, trader, attacker, people, deployer):
    """The side is over the trigger, but the victim's own position is losing (it opened
    at the max price of the spread): ADL may not close it."""
    pumped(env, deployer, trader, victim)
    assert env.perp.position_values(victim, env.eth, True, env.perp.close_price(env.eth, True)).pnl < 0
    refused(env, people, "risk: position not profitable", env.risk.auto_deleverage, victim, env.eth, True, 100_000 * WAD, sender=attacker)


def test_attack__adl_overshooting_the_target__clamped_then_refused_not_triggered(env, victim, trader, attacker, people, deployer):
    """A keeper asks ADL to close the whole winner: it closes only down to the target
    factor (0.5 %), never below; a second request is refused."""
    pumped(env, deployer, trader, victim)
    size = env.perp.get_position(trader, env.eth, True).size_usd
    limit = env.risk.adl_size_limit(trader, env.eth, True)
    assert 0 < limit < size
    tokens = env.token.balanceOf(trader)
    tx = env.risk.auto_deleverage(trader, env.eth, True, size, sender=attacker)
    event = tx.decode_logs(env.risk.AutoDeleverage)[0]
    assert tx.return_value == event.size_delta == limit
    assert env.perp.get_position(trader, env.eth, True).size_usd == size - limit
    assert env.token.balanceOf(trader) == tokens + event.amount_out  # paid as a close
    state = env.risk.adl_state(env.eth, True)
    assert state.pnl_usd * 10_000 >= state.min_pnl_factor_after_adl_bps * state.pool_usd  # not below target
    assert not state.triggered
    refused(env, people, "risk: adl not triggered", env.risk.auto_deleverage, trader, env.eth, True, size, sender=attacker)
    assert_solvent(env)


def test_attack__adl_by_a_stranger_through_perp__refused_not_deleverager(env, trader, attacker, people):
    at_seed(env)
    open_position(env, trader, env.eth, True, env.usd(50_000), 500_000 * WAD)
    hold_time(env)
    refused(env, people, "perp: not deleverager", env.perp.adl_decrease, trader, env.eth, True, 500_000 * WAD, sender=attacker)


# ---------------------------------------------------------------- the pause


def test_attack__open_deposit_or_order_while_paused__refused_paused(env, attacker, people, deployer):
    env.configurator.set_paused(True, sender=deployer)
    at_seed(env)
    refused(env, people, "perp: paused", env.perp.increase_position, env.eth, True, env.usd(1_000), 10_000 * WAD, MAX_UINT, sender=attacker)
    refused(env, people, "vault: paused", env.vault.deposit, env.usd(1_000), 0, attacker, sender=attacker)
    refused(env, people, "orders: paused", env.orders.create_order, env.eth, MARKET_INCREASE, True, env.usd(1_000), 10_000 * WAD, MAX_UINT, 0, FEE, sender=attacker)


def test_attack__pending_order_filled_while_paused__stays_pending_paused(env, attacker, people, deployer, keeper):
    at_seed(env)
    order, _ = place(env, attacker, MARKET_INCREASE, True, env.usd(1_000), 10_000 * WAD)
    env.configurator.set_paused(True, sender=deployer)
    land(env, env.eth, SEED)
    refused(env, people, "perp: paused", env.orders.execute_order, order, keeper, sender=keeper)
    assert env.orders.get_order(order).owner == attacker.address


def test_attack__pauser_lifts_the_pause__refused_not_admin(env, attacker, keeper, people, deployer):
    env.configurator.set_pauser(keeper, sender=deployer)
    refused(env, people, "config: not pauser", env.configurator.set_paused, True, sender=attacker)
    env.configurator.set_paused(True, sender=keeper)
    refused(env, people, "config: not admin", env.configurator.set_paused, False, sender=keeper)
    assert env.perp.paused() and env.vault.paused()


def test_attack__pause_to_trap_users__exits_stay_open(env, trader, victim, lp, keeper, deployer):
    """A pause (by a compromised pauser) traps nobody: closing, adding collateral,
    liquidation and LP redemption all go through, paying what the model says."""
    at_seed(env)
    open_position(env, trader, env.eth, True, env.usd(10_000), 100_000 * WAD)
    open_position(env, victim, env.eth, True, env.usd(2_500), 100_000 * WAD)
    env.configurator.set_pauser(keeper, sender=deployer)
    env.configurator.set_paused(True, sender=keeper)
    push_fresh(env, env.eth, SEED * 98 // 100)
    hold_time(env)
    env.perp.increase_position(env.eth, True, env.usd(100), 0, 0, sender=trader)  # a top-up
    pos = Position.of(env.perp.get_position(trader, env.eth, True))
    tokens = env.token.balanceOf(trader)
    closed = close_position(env, trader, env.eth, True).decode_logs(env.perp.PositionUpdate)[0]
    assert closed.amount_out == left_of(pos, True, SEED * 98 // 100, indices_used(env, env.eth), cfg_of(env), env.scale)
    assert env.token.balanceOf(trader) == tokens + closed.amount_out
    env.perp.liquidate(victim, env.eth, True, keeper, sender=keeper)
    assert env.perp.get_position(victim, env.eth, True).size_usd == 0
    elapse(env, env.vault.cooldown(), env.eth, SEED * 98 // 100)  # the LP's own cooldown
    shares = env.vault.balanceOf(lp) // 10
    paid, _ = quote_redeem(env, shares)
    assert env.vault.redeem(shares, 0, lp, sender=lp).return_value == paid > 0
    assert_solvent(env)
