"""Replays of the incidents in ../shared/REFERENCE.md, each shown impossible (or bounded)
here. The protocol runs on TestReentrantToken (an ordinary 6-decimal ERC-20 until armed),
so the GLP-drain replay can hand control to an attacker contract mid-payout.

Cases:
  test_incident_avax__open_move_close_at_the_oi_cap__profit_bounded_by_cap_times_window_move
  test_incident_avax__direct_fills_off__the_whale_fills_only_at_prices_after_its_order
  test_incident_glp_drain__reentrant_short_refused_aggregates_and_share_price_exact
  test_incident_gmx_bounty__partial_closes__aggregates_equal_sum_of_positions
  test_incident_gains__wrong_side_trigger_prices__refused_at_the_exact_boundary
  test_incident_jelly__thin_market_capped_then_settled_at_a_fixed_price
  test_incident_yfi__crash_beyond_collateral__bad_debt_insurance_first_then_lps
  test_incident_hyperliquid_adl__queue_stops_at_the_target_ranked_by_score
"""

from __future__ import annotations

import ape
import pytest

from attack_kit import (
    BPS,
    assert_aggregates,
    assert_solvent,
    hold_time,
    quote_redeem,
    refused,
    snapshot,
    wealth,
)
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
    position_fee,
    push_fresh,
    risk_of,
)
from orders_helpers import (
    LIMIT_INCREASE,
    MARKET_INCREASE,
    STOP_LOSS,
    TAKE_PROFIT,
    execute,
    land,
    place,
)

SEED = 3_000 * WAD


@pytest.fixture(scope="module")
def env(project, deployer, keeper, lp, chain, accounts):
    e = build_env(project, deployer, keeper, lp, chain, 6, token=deployer.deploy(project.TestReentrantToken))
    for who in accounts[4:9]:
        e.fund(who, 2_000_000)
    push_fresh(e, e.eth, SEED)
    return e


@pytest.fixture(scope="module")
def rx(env, project, deployer, attacker):
    """The GLP-drain attacker: a contract holding LP shares and an ETH long."""
    r = deployer.deploy(project.TestReentrantReceiver)
    token, vault = env.token, env.vault
    token.mint(r, env.usd(1_000_000), sender=attacker)
    r.exec(token, token.approve.encode_input(vault, MAX_UINT), sender=attacker)
    r.exec(vault, vault.deposit.encode_input(env.usd(200_000), 0, r), sender=attacker)
    r.exec(env.perp, env.perp.increase_position.encode_input(env.eth, True, env.usd(20_000), 100_000 * WAD, MAX_UINT), sender=attacker)
    return r


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, rx, deployer, attacker, keeper, trader, lp, accounts):
    """Module fixtures before any test (Ape's isolation never rebases a snapshot)."""


@pytest.fixture
def whale(accounts):
    return accounts[8]


@pytest.fixture
def people(env, rx, trader, lp, attacker, accounts):
    return [rx, trader, lp, attacker, accounts[7], accounts[8]]


def cfg_of(env):
    return config_of(env.configurator, env.eth)


def thin_market(env, deployer, cap_usd: int) -> None:
    """ETH as a thin market: open interest capped at `cap_usd` per side."""
    env.configurator.set_market_config(env.eth, {**cfg_of(env), "max_open_interest_usd": cap_usd * WAD}, sender=deployer)


def at_seed(env):
    push_fresh(env, env.eth, SEED)
    return hold_time(env)


# ---------------------------------------------------------------- 1. GMX v1 AVAX


def test_incident_avax__open_move_close_at_the_oi_cap__profit_bounded_by_cap_times_window_move(env, whale, people, deployer, keeper, rx):
    """The whale opens the most the thin market allows, moves the index as far as the
    Oracle lets one window move (10 % per push, 40 % per window: the next wei is
    refused), and closes. Its profit is at most cap x window move - fees."""
    cap = 200_000
    thin_market(env, deployer, cap)
    at_seed(env)
    oi = env.perp.open_interest(env.eth, True)[0]  # R's long is there too
    size = cap * WAD - oi
    refused(env, people, "perp: max open interest", env.perp.increase_position, env.eth, True, env.usd(50_000), size + 1, MAX_UINT, sender=whale)
    start = wealth(env, whale)
    open_position(env, whale, env.eth, True, env.usd(50_000), size)
    c = env.oracle.config()
    anchor = env.oracle.price_data(env.eth).window_ref_price
    top = anchor * (BPS + c.max_window_move_bps) // BPS
    price = env.oracle.price_data(env.eth).price
    while price < top:
        price = min(price * (BPS + c.max_jump_bps) // BPS, top)
        push_fresh(env, env.eth, price)
    stored = tuple(env.oracle.price_data(env.eth))
    refused(env, people, "oracle: window move", env.oracle.set_prices, [env.eth], [top + 1], env.oracle.price_timestamp(env.eth) + 1, sender=keeper)
    assert tuple(env.oracle.price_data(env.eth)) == stored
    hold_time(env)
    close_position(env, whale, env.eth, True)
    profit = wealth(env, whale) - start
    fees = 2 * position_fee(size, cfg_of(env)["position_fee_bps"], env.scale)
    bound = cap * env.unit * c.max_window_move_bps // BPS - fees
    assert 0 < profit <= bound
    assert_solvent(env)


def test_incident_avax__direct_fills_off__the_whale_fills_only_at_prices_after_its_order(env, whale, people, deployer, keeper):
    """With direct fills off the whale cannot open at the price before its pump and then
    let the pumped price land: its order fills at the first price observed after it."""
    env.configurator.set_direct_fills(env.eth, False, sender=deployer)
    at_seed(env)
    refused(env, people, "perp: direct fills off", env.perp.increase_position, env.eth, True, env.usd(50_000), 150_000 * WAD, MAX_UINT, sender=whale)
    order, _ = place(env, whale, MARKET_INCREASE, True, env.usd(50_000), 150_000 * WAD)
    pumped = SEED * 11 // 10
    land(env, env.eth, pumped)  # the price the whale made lands first
    tx = execute(env, [order], keeper)
    fill = tx.decode_logs(env.perp.PositionUpdate)[0]
    assert fill.price == env.oracle.get_price(env.eth, True) >= pumped  # at the pump, not before it
    assert fill.price > SEED


# ---------------------------------------------------------------- 2. GMX v1 GLP drain


def test_incident_glp_drain__reentrant_short_refused_aggregates_and_share_price_exact(env, rx, attacker, people, accounts, keeper):
    """R takes a payout and, re-entering from it, opens a short (the drain's path around
    the global short tracker). Refused by the lock. The only path that opens positions,
    direct or by order, updates the aggregates with the position: after each step open
    interest equals the sum over positions and pool value the per-position recomputation;
    R's LP shares redeem at exactly the Vault's formula (no phantom short loss in it)."""
    holders = [rx, *accounts[4:9]]
    at_seed(env)
    rx.set_attack(env.perp, env.perp.increase_position.encode_input(env.eth, False, env.usd(50_000), 400_000 * WAD, 0), sender=attacker)
    env.token.arm(rx, rx.attack.encode_input(), sender=attacker)
    t = hold_time(env)
    pool_value = env.perp.pool_value(False)
    pin(env, t)
    rx.exec(env.perp, env.perp.decrease_position.encode_input(env.eth, True, env.usd(1_000), 0, 0, rx), sender=attacker)
    assert rx.attempted() and not rx.succeeded() and bytes(rx.returndata()) == b""
    assert env.perp.get_position(rx, env.eth, False).size_usd == 0
    assert_aggregates(env, holders)
    # the same second: only R's pending borrowing fee was settled, rounded up to a token
    # unit in the pool's favour; no phantom loss, no phantom short
    assert 0 <= env.perp.pool_value(False) - pool_value < env.scale

    # a short by order and one direct: both paths update the aggregates
    order, _ = place(env, accounts[7], MARKET_INCREASE, False, env.usd(20_000), 100_000 * WAD)
    land(env, env.eth, SEED * 99 // 100)
    execute(env, [order], keeper)
    open_position(env, accounts[6], env.eth, False, env.usd(20_000), 100_000 * WAD)
    assert_aggregates(env, holders)

    elapse(env, env.vault.cooldown(), env.eth, SEED * 99 // 100)
    shares = env.vault.balanceOf(rx)
    paid, _ = quote_redeem(env, shares)
    tokens = env.token.balanceOf(rx)
    rx.exec(env.vault, env.vault.redeem.encode_input(shares, 0, rx), sender=attacker)
    assert env.token.balanceOf(rx) == tokens + paid
    assert paid < env.usd(200_000)  # its deposit, less fees and the LPs' share of the moves
    assert_aggregates(env, holders)
    assert_solvent(env)


# ---------------------------------------------------------------- 3. GMX v1 bounty


def test_incident_gmx_bounty__partial_closes__aggregates_equal_sum_of_positions(env, rx, accounts):
    """Partial closes of odd sizes at moving prices, longs and shorts, across time (fees
    and funding accruing): after every step the aggregates equal the sums over positions
    and the pool value equals the per-position recomputation."""
    a, b, c = accounts[6], accounts[7], accounts[8]
    holders = [rx, a, b, c]
    at_seed(env)
    open_position(env, a, env.eth, True, env.usd(30_000), 300_000 * WAD + 7)
    open_position(env, b, env.eth, False, env.usd(20_000), 170_000 * WAD + 13)
    open_position(env, c, env.eth, True, env.usd(5_000), 45_678 * WAD + 9)
    assert_aggregates(env, holders)
    steps = [
        (a, True, 3, 9_950), (b, False, 7, 10_040), (c, True, 2, 10_010),
        (a, True, 5, 10_060), (b, False, 3, 9_980), (c, True, 9, 9_990), (a, True, 2, 10_000),
    ]
    for who, side, parts, price_bps in steps:
        elapse(env, 600, env.eth, SEED * price_bps // BPS)
        hold_time(env)
        size = env.perp.get_position(who, env.eth, side).size_usd
        worst = 0 if side else MAX_UINT
        env.perp.decrease_position(env.eth, side, 0, size // parts + 1, worst, who, sender=who)
        assert_aggregates(env, holders)
    for who, side in ((a, True), (b, False), (c, True)):
        close_position(env, who, env.eth, side)
    assert_aggregates(env, holders)
    assert_solvent(env)


# ---------------------------------------------------------------- 6. Gains forks


TRIGGERS = [  # (kind, is_long, the side of the price a valid trigger lies on)
    (STOP_LOSS, True, -1), (TAKE_PROFIT, True, +1), (STOP_LOSS, False, +1),
    (TAKE_PROFIT, False, -1), (LIMIT_INCREASE, True, -1), (LIMIT_INCREASE, False, +1),
]


def test_incident_gains__wrong_side_trigger_prices__refused_at_the_exact_boundary(env, whale, people, chain):
    """A stop-loss on the wrong side of the price would fill at once, a free option. For
    every trigger kind and side: the trigger at the price itself, or beyond it, is refused;
    one wei on the valid side is accepted; an update to the wrong side is refused too."""
    at_seed(env)
    open_position(env, whale, env.eth, True, env.usd(10_000), 50_000 * WAD)
    open_position(env, whale, env.eth, False, env.usd(10_000), 50_000 * WAD)
    hold_time(env)
    for kind, is_long, valid in TRIGGERS:
        collateral = env.usd(1_000) if kind == LIMIT_INCREASE else 0
        price = env.oracle.get_price(env.eth, (kind == LIMIT_INCREASE) == is_long)
        args = lambda trigger: (env.eth, kind, is_long, collateral, 10_000 * WAD, 0 if (kind == LIMIT_INCREASE) != is_long else MAX_UINT, trigger, env.orders.min_execution_fee())
        refused(env, people, "orders: trigger already met", env.orders.create_order, *args(price), sender=whale)
        next_id = env.orders.next_order_id()
        with ape.reverts("orders: trigger already met"):  # and anywhere beyond the price
            env.orders.create_order(*args(price - valid * 10**18), sender=whale)
        assert env.orders.next_order_id() == next_id
        order_id = env.orders.create_order(*args(price + valid), sender=whale).return_value
        placed = tuple(env.orders.get_order(order_id))
        assert env.orders.get_order(order_id).trigger_price == price + valid
        with ape.reverts("orders: trigger already met"):
            env.orders.update_order(order_id, 10_000 * WAD, args(0)[5], price, sender=whale)
        assert tuple(env.orders.get_order(order_id)) == placed


# ---------------------------------------------------------------- 4/5. JELLY and YFI


def test_incident_jelly__thin_market_capped_then_settled_at_a_fixed_price(env, whale, rx, people, deployer, keeper, attacker):
    """The whale grows a thin market's open interest to its cap (no further), then the
    admin settles the market: every position closes at the settlement price whatever the
    index does next, new exposure is refused, and each payout is the model's."""
    thin_market(env, deployer, 150_000)
    at_seed(env)
    oi = env.perp.open_interest(env.eth, True)[0]
    open_position(env, whale, env.eth, True, env.usd(20_000), 150_000 * WAD - oi)
    refused(env, people, "perp: max open interest", env.perp.increase_position, env.eth, True, env.usd(1_000), 1, MAX_UINT, sender=attacker)
    settle_at = SEED * 102 // 100
    env.configurator.settle_market(env.eth, settle_at, sender=deployer)
    push_fresh(env, env.eth, SEED * 11 // 10)  # the index is pumped after settlement: ignored
    hold_time(env)
    refused(env, people, "perp: market closing", env.perp.increase_position, env.eth, True, env.usd(1_000), 10_000 * WAD, MAX_UINT, sender=whale)
    for who in (whale, rx):
        pos = Position.of(env.perp.get_position(who, env.eth, True))
        tokens = env.token.balanceOf(who)
        tx = env.risk.settle_position(who, env.eth, True, sender=attacker)
        log = tx.decode_logs(env.perp.PositionUpdate)[0]
        assert log.price == settle_at
        assert log.amount_out == left_of(pos, True, settle_at, indices_used(env, env.eth), cfg_of(env), env.scale)
        assert env.token.balanceOf(who) == tokens + log.amount_out
    assert env.perp.open_interest(env.eth, True) == (0, 0)
    assert_solvent(env)


def test_incident_yfi__crash_beyond_collateral__bad_debt_insurance_first_then_lps(env, whale, keeper, lp):
    """A 40x long in a thin market, then a 10 % crash in one push: the shortfall the
    model predicts is paid by the insurance fund up to what it holds, the rest by the
    LPs (the pool), and recorded; the liquidator's fee is paid in full; solvent."""
    thin_market(env, deployer=env.configurator.admin(), cap_usd=300_000)
    at_seed(env)
    env.vault.fund_insurance(env.usd(1_000), sender=lp)
    open_position(env, whale, env.eth, True, env.usd(2_600), 100_000 * WAD)
    crash = SEED * 9 // 10
    push_fresh(env, env.eth, crash)
    hold_time(env)
    pos = Position.of(env.perp.get_position(whale, env.eth, True))
    before = snapshot(env, [whale, keeper])
    tx = env.perp.liquidate(whale, env.eth, True, keeper, sender=keeper)
    liq, debt = tx.decode_logs(env.perp.Liquidation)[0], tx.decode_logs(env.perp.BadDebt)[0]
    left = left_of(pos, True, liq.price, indices_used(env, env.eth), cfg_of(env), env.scale)
    fee = liquidation_fee(pos.size_usd, risk_of(env.configurator, env.eth), env.scale)
    assert left < 0 and debt.shortfall == -left and liq.fee == fee
    # the fund pays the fee's top-up first, then what it can of the shortfall
    fund = before["insurance_amount"]
    assert liq.fee_from_insurance == min(fee, fund)
    assert debt.from_insurance == min(-left, fund - liq.fee_from_insurance)
    assert debt.from_lps == -left - debt.from_insurance > 0
    after = snapshot(env, [whale, keeper])
    assert after["bad_debt_total"] == before["bad_debt_total"] + debt.from_lps
    assert after["insurance_amount"] == fund - liq.fee_from_insurance - debt.from_insurance
    assert after["pool_amount"] == before["pool_amount"] + pos.collateral - fee + liq.fee_from_insurance + debt.from_insurance
    assert after["claimable"][str(keeper)] == before["claimable"][str(keeper)] + fee
    assert_solvent(env)


# ---------------------------------------------------------------- 7. Hyperliquid ADL


def test_incident_hyperliquid_adl__queue_stops_at_the_target_ranked_by_score(env, rx, accounts, attacker, deployer):
    """Four winners on a side whose profit is 5.8 % of the pool (ADL from 4 % down to
    3 %). The keeper goes down the score ranking ((PnL / collateral) x (size /
    collateral)), asking each time for the whole position: positions close until one is
    clamped at the target factor, and the queue stops there (the rest are refused); the
    factor never lands below the target and each event records the score it ranked by."""
    r = {**risk_of(env.configurator, env.eth), "max_pnl_factor_for_adl_bps": 400, "min_pnl_factor_after_adl_bps": 300}
    env.configurator.set_risk_config(env.eth, r, sender=deployer)
    winners = accounts[6:9]
    at_seed(env)
    for who, collateral in zip(winners, (10_000, 30_000, 60_000)):
        open_position(env, who, env.eth, True, env.usd(collateral), 200_000 * WAD)
    push_fresh(env, env.eth, SEED * 11 // 10)
    hold_time(env)
    scores = {str(w): env.risk.adl_score(w, env.eth, True) for w in [rx, *winners]}
    queue = sorted([rx, *winners], key=lambda w: (-scores[str(w)], str(env.perp.position_key(w, env.eth, True))))
    assert queue[0] == winners[0]  # most levered winner first
    done, refusals = False, 0
    for who in queue:
        size = env.perp.get_position(who, env.eth, True).size_usd
        if done:
            refusals += 1
            refused(env, [*winners, rx], "risk: adl not triggered", env.risk.auto_deleverage, who, env.eth, True, size, sender=attacker)
            continue
        tx = env.risk.auto_deleverage(who, env.eth, True, size, sender=attacker)
        event = tx.decode_logs(env.risk.AutoDeleverage)[0]
        assert event.score == scores[str(who)]
        state = env.risk.adl_state(env.eth, True)
        assert state.pnl_usd * BPS >= state.min_pnl_factor_after_adl_bps * state.pool_usd  # never below
        if event.size_delta < size:  # clamped at the target: the queue stops here
            assert not state.triggered
            done = True
    assert done and refusals > 0
    assert_solvent(env)
