"""What the OrderBook protects: the front-run on a known next price, direct fills off per
market, keeper outages, re-entry on refunds, settled markets, liquidation unaffected.

The front-run is measured on both kinds of market: with direct fills on (a local devnet)
a trader who knows the keeper's next price profits from it; with them off the same trader
fills at that price and only pays fees. Expected amounts come from the reference model.
"""

from __future__ import annotations

import ape
import pytest

from helpers import (
    MAX_UINT,
    WAD,
    build_env,
    config_of,
    fast_reverts,  # noqa: F401 (autouse fixture)
    open_position,
    close_position,
    pin,
    position_fee,
    pnl_tokens,
    tokens_for,
)
from orders_helpers import (
    land,
    EXECUTED,
    LIMIT_INCREASE,
    PENDING,
    status,
    FEE,
    MARKET_DECREASE,
    MARKET_INCREASE,
    MARKET_SETTLED,
    STOP_LOSS,
    execute,
    exists,
    moved,
    place,
)
from perpool import params

SIDES = pytest.mark.parametrize("is_long", [True, False], ids=["long", "short"])
SIZE = 20_000 * WAD
SEED = params.LOCAL_MARKETS["ETH"]


@pytest.fixture(scope="module")
def off(project, deployer, keeper, lp, chain, accounts):
    """A protocol deployed as on a public network: direct fills off in every market."""
    env = build_env(project, deployer, keeper, lp, chain, 6, direct_fills=False)
    env.fund(accounts[4])
    env.fund(accounts[7])
    return env


@pytest.fixture(scope="module")
def receiver(accounts):
    return accounts[9]


@pytest.fixture(scope="module")
def cfg(env):
    return config_of(env.configurator, env.eth)


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, off, funded_trader, counterparty, receiver, cfg, deployer, attacker, project):
    """Module fixtures before any test (Ape's isolation never rebases a snapshot)."""


# ---------------------------------------------------------------- the front-run, measured


@SIDES
def test_front_run__direct_fills_on__knowing_the_next_price_pays(env, funded_trader, cfg, is_long):
    """The gain exists where direct fills are on: open at the stored price, let the known
    next price land, close at it."""
    pin(env)
    next_price = moved(SEED, 150 if is_long else -150)  # the trader has seen it coming
    balance = env.token.balanceOf(funded_trader)
    collateral = env.usd(2_000)

    open_position(env, funded_trader, env.eth, is_long, collateral, SIZE)
    land(env, env.eth, next_price)
    close = close_position(env, funded_trader, env.eth, is_long).decode_logs(env.perp.PositionUpdate)[0]

    gain = env.token.balanceOf(funded_trader) - balance
    fees = 2 * position_fee(SIZE, cfg["position_fee_bps"], env.scale) + close.borrow_fee - close.funding
    tokens = tokens_for(SIZE, SEED, is_long)
    assert gain == pnl_tokens(SIZE, tokens, next_price, is_long, env.scale) - fees
    assert gain > 0


@SIDES
def test_front_run__direct_fills_off__the_known_price_is_the_fill_only_fees_are_lost(off, accounts, is_long, receiver):
    """The same trader where direct fills are off: every trade is an order, and an order
    fills only at a price observed after it, so the price they knew is their entry."""
    trader = accounts[4]
    cfg = config_of(off.configurator, off.eth)
    pin(off)
    next_price = moved(SEED, 150 if is_long else -150)
    collateral = off.usd(2_000)
    with ape.reverts("perp: direct fills off"):
        off.perp.increase_position(off.eth, is_long, collateral, SIZE, MAX_UINT if is_long else 0, sender=trader)
    balance = off.token.balanceOf(trader)

    opening, _ = place(off, trader, MARKET_INCREASE, is_long, collateral, SIZE)
    land(off, off.eth, next_price)  # the price the trader knew lands...
    execute(off, [opening], receiver)  # ...and the order fills at it
    entry = off.perp.get_position(trader, off.eth, is_long)
    assert entry.size_tokens == tokens_for(SIZE, next_price, is_long)
    closing, _ = place(off, trader, MARKET_DECREASE, is_long, 0, SIZE)
    land(off, off.eth, next_price)  # no further move
    close = execute(off, [closing], receiver).decode_logs(off.perp.PositionUpdate)[0]
    off.vault.claim(trader, sender=trader)

    gain = off.token.balanceOf(trader) - balance
    fees = 2 * position_fee(SIZE, cfg["position_fee_bps"], off.scale) + 2 * FEE + close.borrow_fee - close.funding
    rounding = pnl_tokens(SIZE, entry.size_tokens, next_price, is_long, off.scale)  # <= 0: entry rounding
    assert rounding <= 0
    assert gain == rounding - fees < 0


# ---------------------------------------------------------------- direct fills off


@SIDES
def test_direct_fills_off__every_direct_change_refused__collateral_moves_by_order(off, accounts, is_long, receiver):
    """Collateral changes go through orders too: done directly, they could decide after the
    price is known whether another pending order of the owner fills (see the free-option
    test below)."""
    trader = accounts[4]
    opening, _ = place(off, trader, MARKET_INCREASE, is_long, off.usd(1_000), SIZE)
    land(off, off.eth, SEED)
    execute(off, [opening], receiver)
    pos = off.perp.get_position(trader, off.eth, is_long)
    worst = 0 if is_long else MAX_UINT
    for call, args in (
        (off.perp.increase_position, (off.eth, is_long, off.usd(100), 0, 0)),
        (off.perp.increase_position, (off.eth, is_long, off.usd(100), WAD, MAX_UINT if is_long else 0)),
        (off.perp.decrease_position, (off.eth, is_long, off.usd(100), 0, worst, trader)),
        (off.perp.decrease_position, (off.eth, is_long, 0, SIZE, worst, trader)),
    ):
        with ape.reverts("perp: direct fills off"):
            call(*args, sender=trader)

    top_up, _ = place(off, trader, MARKET_INCREASE, is_long, off.usd(100), 0)
    land(off, off.eth, SEED)
    tx = execute(off, [top_up], receiver)
    log = tx.decode_logs(off.perp.PositionUpdate)[0]
    assert (log.size_usd, log.collateral_in, log.price) == (SIZE, off.usd(100), 0)
    assert log.collateral == pos.collateral + off.usd(100) - log.borrow_fee + log.funding
    assert not off.perp.direct_fills(off.eth)
    assert off.configurator.direct_fills_off(off.eth)


def test_free_option__owner_cannot_decide_a_pending_orders_fate_after_seeing_the_price(off, accounts, receiver):
    """Review finding: with collateral changes direct, an owner who saw the next price could
    withdraw collateral so Perp refused a pending market increase (an early cancel), or add
    some so a too-levered one filled. With direct fills off nothing direct moves the
    position, so the order's fate is decided at the price, not by the owner."""
    trader = accounts[4]
    opening, _ = place(off, trader, MARKET_INCREASE, True, off.usd(1_000), SIZE)
    land(off, off.eth, SEED)
    execute(off, [opening], receiver)
    grow, _ = place(off, trader, MARKET_INCREASE, True, 0, SIZE)  # to ~40x
    with ape.reverts("orders: too early to cancel"):
        off.orders.cancel_order(grow, sender=trader)
    with ape.reverts("perp: direct fills off"):
        off.perp.decrease_position(off.eth, True, off.usd(500), 0, 0, trader, sender=trader)
    with ape.reverts("perp: direct fills off"):
        off.perp.increase_position(off.eth, True, off.usd(500), 0, 0, sender=trader)
    land(off, off.eth, moved(SEED, -100))
    tx = execute(off, [grow], receiver)
    assert tuple(tx.return_value) == (1, 0), [c.reason for c in tx.decode_logs(off.orders.OrderCancelled)]
    assert off.perp.get_position(trader, off.eth, True).size_usd == 2 * SIZE


def test_direct_fills_off__markets_listed_later_start_off(off, deployer):
    """Review finding: a market listed after the deploy must not be directly tradable, not
    even until a second call: the Configurator lists it with its new-markets policy."""
    assert not off.configurator.new_markets_direct_fills()
    off.oracle.add_market("SOL", sender=deployer)
    market = off.oracle.market_count()
    tx = off.configurator.add_market(market, dict(params.MARKET_CONFIG), dict(params.RISK_CONFIG), sender=deployer)
    assert not off.perp.direct_fills(market) and off.configurator.direct_fills_off(market)
    assert tx.decode_logs(off.perp.DirectFillsSet)[0].market == market


def test_direct_fills__new_markets_policy_admin_only(env, deployer, attacker):
    assert env.configurator.new_markets_direct_fills()
    with ape.reverts("config: not admin"):
        env.configurator.set_new_markets_direct_fills(False, sender=attacker)
    tx = env.configurator.set_new_markets_direct_fills(False, sender=deployer)
    assert not tx.decode_logs(env.configurator.NewMarketsDirectFillsSet)[0].enabled


def test_direct_fills_off__keeper_outage__direct_close_at_the_exit_price_is_the_way_out(off, accounts, deployer, project, receiver):
    """With no keeper price a decrease order cannot fill; the direct close takes the exit
    price (the reference feed, with the fallback spread in the pool's favour)."""
    trader = accounts[4]
    opening, _ = place(off, trader, MARKET_INCREASE, True, off.usd(1_000), SIZE)
    land(off, off.eth, SEED)
    execute(off, [opening], receiver)
    feed = deployer.deploy(project.TestFeed, 8)
    off.oracle.set_reference_feed(off.eth, feed, 86_400, sender=deployer)
    off.chain.mine(deltatime=off.oracle.config().max_price_age + 1)
    feed.set_answer(SEED // 10**10, 0, sender=deployer)
    pin(off)
    assert off.oracle.is_stale(off.eth)
    closing, _ = place(off, trader, MARKET_DECREASE, True, 0, SIZE)
    assert tuple(off.orders.order_status(closing, True))[1] == 35  # waits for a fresh price

    tx = off.perp.decrease_position(off.eth, True, 0, SIZE, 0, trader, sender=trader)

    fallback = off.oracle.get_exit_price(off.eth, False)
    assert tx.decode_logs(off.perp.PositionUpdate)[0].price == fallback < SEED
    assert off.perp.get_position(trader, off.eth, True).size_usd == 0


def test_direct_fills__switch_admin_only_both_ways_and_logged(env, deployer, attacker, funded_trader):
    with ape.reverts("config: not admin"):
        env.configurator.set_direct_fills(env.eth, False, sender=attacker)
    with ape.reverts("config: unknown market"):
        env.configurator.set_direct_fills(99, False, sender=deployer)
    with ape.reverts("perp: not configurator"):
        env.perp.set_direct_fills(env.eth, False, sender=attacker)
    tx = env.configurator.set_direct_fills(env.eth, False, sender=deployer)
    assert not env.perp.direct_fills(env.eth) and env.perp.direct_fills(env.btc)
    assert not tx.decode_logs(env.perp.DirectFillsSet)[0].enabled
    assert tx.decode_logs(env.configurator.DirectFillsSet)[0].market == env.eth
    with ape.reverts("perp: direct fills off"):
        open_position(env, funded_trader, env.eth, True, env.usd(1_000), SIZE)
    open_position(env, funded_trader, env.btc, True, env.usd(1_000), SIZE)
    env.configurator.set_direct_fills(env.eth, True, sender=deployer)
    open_position(env, funded_trader, env.eth, True, env.usd(1_000), SIZE)


def test_direct_fills__flag_survives_market_config_and_status_changes(env, deployer):
    env.configurator.set_direct_fills(env.eth, False, sender=deployer)
    env.configurator.set_market_config(env.eth, dict(params.MARKET_CONFIG), sender=deployer)
    env.configurator.close_market(env.eth, sender=deployer)
    env.configurator.reopen_market(env.eth, sender=deployer)
    assert not env.perp.direct_fills(env.eth)
    assert env.perp.market_status(env.eth) == 0


def test_direct_fills_off__liquidation_unaffected(off, accounts, receiver):
    trader = accounts[4]
    opening, _ = place(off, trader, MARKET_INCREASE, True, off.usd(500), 20_000 * WAD)
    land(off, off.eth, SEED)
    execute(off, [opening], receiver)
    crash = moved(SEED, -250)
    land(off, off.eth, crash)
    assert off.perp.is_liquidatable(trader, off.eth, True)
    off.perp.liquidate(trader, off.eth, True, receiver, sender=off.keeper)
    assert off.perp.get_position(trader, off.eth, True).size_usd == 0


# ---------------------------------------------------------------- settled markets


def test_settled_market__decrease_orders_cancelled_everything_back_to_the_owner(env, funded_trader, deployer, receiver):
    pin(env)
    open_position(env, funded_trader, env.eth, True, env.usd(1_000), SIZE)
    oid, _ = place(env, funded_trader, STOP_LOSS, True, 0, SIZE, trigger=moved(SEED, -500))
    env.configurator.settle_market(env.eth, SEED, sender=deployer)
    land(env, env.eth, SEED)
    tx = execute(env, [oid], receiver)
    log = tx.decode_logs(env.orders.OrderCancelled)[0]
    assert (log.reason_code, log.reason) == (MARKET_SETTLED, "orders: market settled")
    assert (log.refund, log.fee_paid) == (FEE, 0)  # not the owner's doing: the fee back too
    assert not exists(env, oid) and env.vault.claimable(funded_trader) == FEE
    # the position itself is settled by anyone through the RiskEngine
    paid = env.risk.settle_position(funded_trader, env.eth, True, sender=receiver).return_value
    assert paid > 0 and env.perp.get_position(funded_trader, env.eth, True).size_usd == 0


# ---------------------------------------------------------------- pause and closing markets


def test_pause__triggered_increase_waits_out_the_pause_nobody_takes_its_fee(env, funded_trader, attacker, deployer, receiver):
    """Review finding: a pause used to make Perp refuse triggered increase orders, which
    were then cancelled, their fees going to whoever executed them after the timeout."""
    t = pin(env)
    oid, _ = place(env, funded_trader, LIMIT_INCREASE, True, env.usd(1_000), SIZE, trigger=moved(SEED, -100))
    env.configurator.set_paused(True, sender=deployer)
    later = t + env.orders.timeout()
    pin(env, later)
    env.oracle.set_prices([env.eth], [moved(SEED, -200)], later, sender=env.keeper)
    pin(env, later)
    assert status(env, oid, as_keeper=False) == (PENDING, 3)
    assert tuple(execute(env, [oid], attacker, sender=attacker).return_value) == (0, 0)
    assert exists(env, oid) and env.vault.claimable(attacker) == 0

    env.configurator.set_paused(False, sender=deployer)
    land(env, env.eth, moved(SEED, -200))
    assert tuple(execute(env, [oid], receiver).return_value) == (1, 0)


def test_closing_market__increase_orders_cancelled_everything_back_collateral_top_ups_fill(env, funded_trader, deployer, receiver):
    pin(env)
    open_position(env, funded_trader, env.eth, True, env.usd(1_000), SIZE)
    grow, _ = place(env, funded_trader, LIMIT_INCREASE, True, env.usd(500), SIZE, trigger=moved(SEED, -100))
    top_up, _ = place(env, funded_trader, MARKET_INCREASE, True, env.usd(200), 0)
    env.configurator.close_market(env.eth, sender=deployer)
    with ape.reverts("orders: market closing"):
        env.orders.create_order(env.eth, MARKET_INCREASE, True, env.usd(100), SIZE, MAX_UINT, 0, FEE, sender=funded_trader)
    land(env, env.eth, moved(SEED, -200))

    tx = execute(env, [grow, top_up], receiver)

    assert tuple(tx.return_value) == (1, 1)
    log = tx.decode_logs(env.orders.OrderCancelled)[0]
    assert (log.order_id, log.reason, log.refund, log.fee_paid) == (grow, "perp: market closing", env.usd(500) + FEE, 0)
    assert env.vault.claimable(receiver) == FEE  # the top-up's fee only


# ---------------------------------------------------------------- a price stamped ahead of the block


def test_known_limit__a_price_stamped_ahead_fills_an_order_placed_before_it_lands(env, funded_trader):
    """Review finding, kept as a documented limit (docs/orders.md): the Oracle accepts an
    observation up to max_future_skew ahead of the block, and an order's floor is the block
    time. A push stamped k seconds ahead that lands just after an order fills it: an updater
    that stamps ahead gives k seconds of look-ahead. The shipped price keeper never stamps
    ahead of chain time; a stamp beyond the skew is refused by the Oracle."""
    t = max(env.chain.blocks.head.timestamp, env.oracle.price_timestamp(env.eth)) + 1
    pin(env, t)
    oid, _ = place(env, funded_trader, MARKET_INCREASE, True, env.usd(1_000), SIZE)
    skew = env.oracle.config().max_future_skew
    pin(env, t)
    with ape.reverts("oracle: future timestamp"):
        env.oracle.set_prices([env.eth], [SEED], t + skew + 1, sender=env.keeper)
    pin(env, t)
    env.oracle.set_prices([env.eth], [SEED], t + skew, sender=env.keeper)
    pin(env, t)
    assert status(env, oid) == (EXECUTED, 0)


# ---------------------------------------------------------------- re-entry on refunds


@pytest.fixture(scope="module")
def hooked(project, deployer, keeper, lp, chain):
    """A protocol whose collateral token calls back into a target on every transfer."""
    token = deployer.deploy(project.TestReentrantToken)
    return build_env(project, deployer, keeper, lp, chain, 6, token=token)


def test_reentry__owner_cancel_refund_calls_back__blocked_by_the_lock(hooked, accounts):
    env = hooked
    owner = accounts[4]
    env.fund(owner)
    t = pin(env)
    first, _ = place(env, owner, MARKET_INCREASE, True, env.usd(1_000), SIZE)
    second, _ = place(env, owner, MARKET_INCREASE, True, env.usd(1_000), SIZE)
    pin(env, t + env.orders.timeout())
    escrow = env.vault.escrow_amount()
    # during the refund transfer, try to cancel the other order (a second refund)
    env.token.arm(env.orders.address, env.orders.cancel_order.encode_input(second), sender=owner)

    env.orders.cancel_order(first, sender=owner)

    assert env.token.reentry_attempted() and not env.token.reentry_succeeded()
    assert exists(env, second) and not exists(env, first)
    assert env.vault.escrow_amount() == escrow - env.usd(1_000) - FEE
    assert env.vault.is_solvent()


def test_reentry__a_keeper_batch_transfers_nothing_no_callback_runs(hooked, accounts, receiver):
    """Fills, payouts, refunds and fees inside a batch are credits: no token moves, so no
    owner or token gets control while the batch runs."""
    env = hooked
    owner = accounts[4]
    env.fund(owner)
    pin(env)
    filled, _ = place(env, owner, MARKET_INCREASE, True, env.usd(1_000), SIZE)
    rejected, _ = place(env, owner, MARKET_INCREASE, False, env.usd(50), SIZE)  # too levered
    land(env, env.eth, SEED)
    env.token.arm(env.orders.address, env.orders.cancel_order.encode_input(filled), sender=owner)

    tx = execute(env, [filled, rejected], receiver)

    assert tuple(tx.return_value) == (1, 1)
    assert not env.token.reentry_attempted()
    assert env.vault.claimable(owner) == env.usd(50)


def test_reentry__attacker_contract_owner_reenters_on_its_refund__blocked_nothing_lost(hooked, project, deployer):
    """The order owner is a contract that, paid its refund, tries to cancel its other order
    (a second refund) before the first cancel has returned."""
    env = hooked
    attacker = deployer.deploy(project.TestOrderAttacker, env.orders.address)
    env.token.mint(attacker.address, env.usd(10_000), sender=deployer)
    attacker.approve(env.token.address, env.vault.address, sender=deployer)
    t = pin(env)
    first = attacker.place(env.eth, MARKET_INCREASE, True, env.usd(1_000), SIZE, FEE, sender=deployer).return_value
    second = attacker.place(env.eth, MARKET_INCREASE, True, env.usd(1_000), SIZE, FEE, sender=deployer).return_value
    assert env.orders.get_order(first).owner == attacker.address
    pin(env, t + env.orders.timeout())
    escrow, balance = env.vault.escrow_amount(), env.token.balanceOf(attacker)
    env.token.arm(attacker.address, attacker.attack.encode_input(), sender=deployer)

    attacker.cancel(first, second, sender=deployer)

    assert env.token.reentry_attempted() and attacker.attempted() and not attacker.succeeded()
    assert not exists(env, first) and exists(env, second)
    assert env.token.balanceOf(attacker) == balance + env.usd(1_000) + FEE  # one refund, once
    assert env.vault.escrow_amount() == escrow - env.usd(1_000) - FEE
    assert env.vault.is_solvent()
