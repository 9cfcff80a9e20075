"""Winding a market down: Configurator.close_market, Configurator.settle_market,
RiskEngine.settle_position, and every close, liquidation and view of a settled market.

- close_market: status 1 (close-only). Opening and increasing refused ("perp: market
  closing"); adding collateral, decreasing and closing go on at the oracle price.
- settle_market(price): price != 0; where the Oracle has a reference feed for the market,
  |price - ref| * 10_000 <= max_deviation_bps * ref with ref = answer * 10**(18 - decimals)
  (the answer's age ignored, a non-positive answer refused). Status 2: fees accrue to the
  settlement, then stop (rates zero); every close, `settle_position` and liquidation uses
  the settlement price, with no keeper price needed; a settled market stays settled.
Expected amounts come from helpers.py's model, at the settlement price and the frozen indices.
"""

from __future__ import annotations

import ape
import pytest
from helpers import (
    BPS,
    Indices,
    MAX_UINT,
    Position,
    WAD,
    ZERO_ADDRESS,
    buckets,
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
    pnl_wad,
    predict_decrease,
    predict_increase,
    push_fresh,
    risk_of,
    state_of,
    to_tokens,
)

from perpool import params
from chain_isolation import isolated

BASE = params.LOCAL_MARKETS["ETH"]  # the seeded price, anchor of the oracle's window
BTC_PRICE = params.LOCAL_MARKETS["BTC"] + 98_765_432_109_876_543
ODD = 12_345_678_901_234_567  # wei of price that make every rounding matter
OPEN_PRICE = BASE + ODD
# moves of 1.9 % from the anchor: under the 2 % spread threshold, so min == max
UP_PRICE = BASE * 10_190 // BPS + ODD // 3
DOWN_PRICE = BASE * 9_810 // BPS - ODD // 3
SETTLE_PRICE = BASE * 10_400 // BPS + ODD // 7  # 4 % above: longs profit, shorts lose
SIDES = pytest.mark.parametrize("is_long", [True, False], ids=["long", "short"])


@pytest.fixture(scope="module")
def cfg(env):
    return config_of(env.configurator, env.eth)


@pytest.fixture(scope="module")
def liquidator(accounts):
    return accounts[9]


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(
    env, cfg, funded_trader, counterparty, hedger, liquidator, deployer, project
):
    """Create the module-scoped deploys before any test (Ape's isolation never rebases)."""


# ---------------------------------------------------------------- helpers


def full_state(env, accounts):
    """state_of plus the market statuses and settlement prices."""
    markets = env.markets.values()
    statuses = [(env.perp.market_status(m), env.perp.settlement_price(m)) for m in markets]
    return state_of(env, accounts), statuses


def refused(env, reason, call, *args, sender, others=()):
    """`call` sent by `sender` reverts with exactly `reason` and changes nothing."""
    accounts = (sender, *others)
    before = full_state(env, accounts)
    with ape.reverts(reason):
        call(*args, sender=sender)
    assert full_state(env, accounts) == before


def settle_refused(env, reason, price, sender, market=None):
    market = env.eth if market is None else market
    refused(env, reason, env.configurator.settle_market, market, price, sender=sender)


def grow(env, is_long, collateral, size, market=None, *, sender):
    """Open or increase at whatever the oracle price is."""
    market = env.eth if market is None else market
    worst = MAX_UINT if is_long else 0
    return env.perp.increase_position(market, is_long, collateral, size, worst, sender=sender)


def opened(env, account, is_long, collateral, size, price=OPEN_PRICE, market=None):
    market = env.eth if market is None else market
    push_fresh(env, market, price)
    pin(env)
    open_position(env, account, market, is_long, collateral, size)
    return Position.of(env.perp.get_position(account, market, is_long))


def settle(env, deployer, price=SETTLE_PRICE):
    pin(env)
    return env.configurator.settle_market(env.eth, price, sender=deployer)


def go_stale(env):
    """Let the keeper price of every market go stale; pin the next block to the head."""
    env.chain.mine(deltatime=env.oracle.config().max_price_age + 1)
    pin(env)
    assert env.oracle.is_stale(env.eth)


def status(env, market=None):
    market = env.eth if market is None else market
    return env.perp.market_status(market), env.perp.settlement_price(market)


def money(env, account):
    return buckets(env.vault), env.token.balanceOf(account), env.token.balanceOf(env.vault)


def decrease(env, account, is_long, collateral_delta, size_delta):
    worst = 0 if is_long else MAX_UINT
    return env.perp.decrease_position(
        env.eth, is_long, collateral_delta, size_delta, worst, account, sender=account
    )


def model_increase(env, pos, is_long, collateral_delta, size_delta, price, cfg):
    """The model's change for an increase just sent, with the indices it settled with."""
    idx = indices_used(env, env.eth)
    return predict_increase(pos, is_long, collateral_delta, size_delta, price, idx, cfg, env.scale)


def model_decrease(env, pos, is_long, collateral_delta, size_delta, price, cfg):
    """The model's change for a decrease just sent, with the indices it settled with."""
    idx = indices_used(env, env.eth)
    return predict_decrease(pos, is_long, collateral_delta, size_delta, price, idx, cfg, env.scale)


def assert_change(env, tx, change, account, is_long, before):
    """Position, log, buckets and balances as the model says (no insurance cut here)."""
    (pool, collateral, escrow, insurance), account_tokens, vault_tokens = before
    assert Position.of(env.perp.get_position(account, env.eth, is_long)) == change.position
    [log] = tx.decode_logs(env.perp.PositionUpdate)
    expect_update(log, change, account, env.eth, is_long)
    pool += change.pool_delta
    collateral += change.collateral_delta
    assert buckets(env.vault) == (pool, collateral, escrow, insurance)
    flow = change.amount_out - change.collateral_in
    assert env.token.balanceOf(account) == account_tokens + flow
    assert env.token.balanceOf(env.vault) == vault_tokens - flow
    assert env.vault.is_solvent()


def with_feed(env, deployer, project, decimals, answer, updated_at=0, max_age=3_600):
    """A TestFeed with `answer`, set as the market's reference feed in the Oracle."""
    feed = deployer.deploy(project.TestFeed, decimals)
    feed.set_answer(answer, updated_at, sender=deployer)
    env.oracle.set_reference_feed(env.eth, feed, max_age, sender=deployer)
    return feed


def bounds(env, reference):
    """The lowest and highest settlement price within max_deviation_bps of `reference`."""
    room = reference * env.oracle.config().max_deviation_bps // BPS
    return reference - room, reference + room


# ---------------------------------------------------------------- close_market


def test_close_market__admin__close_only_and_logged(env, deployer):
    tx = env.configurator.close_market(env.eth, sender=deployer)
    [log] = tx.decode_logs(env.configurator.MarketClosed)
    assert log.market == env.eth
    [log] = tx.decode_logs(env.perp.MarketStatusSet)
    assert (log.market, log.status, log.settlement_price) == (env.eth, 1, 0)
    assert status(env) == (1, 0)
    assert status(env, env.btc) == (0, 0)


def test_reopen_market__close_only__active_again_and_logged(env, funded_trader, deployer):
    env.configurator.close_market(env.eth, sender=deployer)
    tx = env.configurator.reopen_market(env.eth, sender=deployer)
    [log] = tx.decode_logs(env.configurator.MarketReopened)
    assert log.market == env.eth
    [log] = tx.decode_logs(env.perp.MarketStatusSet)
    assert (log.status, log.settlement_price) == (0, 0)
    assert status(env) == (0, 0)
    opened(env, funded_trader, True, env.usd(1_000), 10_000 * WAD)  # new exposure again
    assert env.perp.get_position(funded_trader, env.eth, True).size_usd == 10_000 * WAD


def test_reopen_market__settled_or_stranger__refused(env, deployer, attacker):
    refused(env, "config: not admin", env.configurator.reopen_market, env.eth, sender=attacker)
    settle(env, deployer)
    refused(env, "perp: market settled", env.configurator.reopen_market, env.eth, sender=deployer)


def test_set_market_status__unknown_status__refused(env, accounts):
    # only the Configurator calls it, with 0, 1 or 2; Perp guards the rest itself
    env.chain.set_balance(env.configurator.address, 10**18)
    as_configurator = accounts[env.configurator.address]  # impersonated on Anvil
    refused(env, "perp: bad status", env.perp.set_market_status, env.eth, 3, 0, sender=as_configurator)


def test_close_market__stranger_or_unknown_market__refused(env, deployer, attacker):
    close_market = env.configurator.close_market
    refused(env, "config: not admin", close_market, env.eth, sender=attacker)
    unknown = max(env.markets.values()) + 1
    refused(env, "config: unknown market", close_market, unknown, sender=deployer)
    set_status = env.perp.set_market_status
    refused(env, "perp: not configurator", set_status, env.eth, 1, 0, sender=deployer)


@SIDES
def test_increase__market_closing__new_exposure_refused_collateral_add_allowed(
    env, funded_trader, counterparty, deployer, cfg, is_long
):
    pos = opened(env, funded_trader, is_long, env.usd(1_000), 10_000 * WAD)
    env.configurator.close_market(env.eth, sender=deployer)
    push_fresh(env, env.eth, OPEN_PRICE)
    pin(env)
    both = {"others": (counterparty,)}
    for collateral in (0, env.usd(100)):
        args = (env, is_long, collateral, 1_000 * WAD)
        refused(env, "perp: market closing", grow, *args, sender=funded_trader, **both)
    args = (env, is_long, env.usd(1_000), 10_000 * WAD)
    refused(env, "perp: market closing", grow, *args, sender=counterparty, others=(funded_trader,))
    # adding collateral alone takes no new exposure
    before = money(env, funded_trader)
    tx = grow(env, is_long, env.usd(250) + 7, 0, sender=funded_trader)
    change = model_increase(env, pos, is_long, env.usd(250) + 7, 0, 0, cfg)  # reads no price
    assert_change(env, tx, change, funded_trader, is_long, before)
    # the other market still trades
    btc = opened(env, counterparty, is_long, env.usd(1_000), 10_000 * WAD, BTC_PRICE, env.btc)
    assert btc.size_usd == 10_000 * WAD


@SIDES
def test_decrease__market_closing__partial_and_full_close_at_oracle_price(
    env, funded_trader, deployer, cfg, is_long
):
    size = 30_000 * WAD + 123_456_789
    pos = opened(env, funded_trader, is_long, env.usd(2_000) + 333_333, size)
    env.configurator.close_market(env.eth, sender=deployer)
    price = UP_PRICE if is_long else DOWN_PRICE
    push_fresh(env, env.eth, price)
    pin(env)
    before = money(env, funded_trader)
    tx = decrease(env, funded_trader, is_long, env.usd(150), 10_000 * WAD)
    change = model_decrease(env, pos, is_long, env.usd(150), 10_000 * WAD, price, cfg)
    assert change.pnl > 0 and tx.return_value == change.amount_out
    assert_change(env, tx, change, funded_trader, is_long, before)

    pos = change.position
    push_fresh(env, env.eth, OPEN_PRICE)
    pin(env)
    before = money(env, funded_trader)
    tx = decrease(env, funded_trader, is_long, 0, pos.size_usd)
    change = model_decrease(env, pos, is_long, 0, pos.size_usd, OPEN_PRICE, cfg)
    assert tx.return_value == change.amount_out > 0
    assert_change(env, tx, change, funded_trader, is_long, before)


# ---------------------------------------------------------------- settle_market: the price


@pytest.mark.parametrize(
    "price, close_first", [(1, False), (BASE * 50, True)], ids=["1wei_active", "50x_closing"]
)
def test_settle_market__no_reference_feed__any_nonzero_price_settles_and_logs(
    env, deployer, price, close_first
):
    if close_first:
        env.configurator.close_market(env.eth, sender=deployer)
    assert env.oracle.reference_feed(env.eth).feed == ZERO_ADDRESS
    tx = settle(env, deployer, price)
    [log] = tx.decode_logs(env.configurator.MarketSettled)
    assert (log.market, log.settlement_price, log.reference_price) == (env.eth, price, 0)
    [log] = tx.decode_logs(env.perp.MarketStatusSet)
    assert (log.market, log.status, log.settlement_price) == (env.eth, 2, price)
    assert status(env) == (2, price)
    assert status(env, env.btc) == (0, 0)


def test_settle_market__zero_price__refused(env, deployer, project):
    settle_refused(env, "config: zero price", 0, deployer)
    with_feed(env, deployer, project, 8, 3_000 * 10**8)
    settle_refused(env, "config: zero price", 0, deployer)


@pytest.mark.parametrize("side", ["low", "high"])
@pytest.mark.parametrize("decimals", [8, 18])
def test_settle_market__reference_feed__at_bound_settles_one_wei_beyond_refused(
    env, deployer, project, decimals, side
):
    answer = 3_010_987_654_321_234_567 // 10 ** (18 - decimals)
    with_feed(env, deployer, project, decimals, answer)
    reference = answer * 10 ** (18 - decimals)  # the feed's decimals scale its answer to WAD
    low, high = bounds(env, reference)
    at, beyond = (low, low - 1) if side == "low" else (high, high + 1)
    settle_refused(env, "config: price off reference", beyond, deployer)
    tx = settle(env, deployer, at)
    [log] = tx.decode_logs(env.configurator.MarketSettled)
    assert (log.market, log.settlement_price, log.reference_price) == (env.eth, at, reference)
    assert status(env) == (2, at)


def test_settle_market__stale_reference__still_bounds(env, deployer, project):
    """The answer's age is ignored: the market may be settled because its feeds stopped."""
    answer = 3_020_123_456_789_012_345
    feed = with_feed(env, deployer, project, 18, answer, updated_at=1, max_age=60)
    assert feed.latestRoundData()[3] + 60 < env.chain.blocks.head.timestamp  # stale
    low, high = bounds(env, answer)
    settle_refused(env, "config: price off reference", high + 1, deployer)
    settle_refused(env, "config: price off reference", low - 1, deployer)
    settle(env, deployer, high)
    assert status(env) == (2, high)


@pytest.mark.parametrize("answer", [0, -1, -(3_000 * 10**8)])
def test_settle_market__non_positive_reference__refused(env, deployer, project, answer):
    with_feed(env, deployer, project, 8, answer)
    settle_refused(env, "config: reference invalid", SETTLE_PRICE, deployer)


def test_settle_market__not_admin_or_unknown_market__refused(env, deployer, attacker, accounts):
    pauser = accounts[8]
    env.configurator.set_pauser(pauser, sender=deployer)
    for who in (attacker, pauser):
        settle_refused(env, "config: not admin", SETTLE_PRICE, who)
    unknown = max(env.markets.values()) + 1
    settle_refused(env, "config: unknown market", SETTLE_PRICE, deployer, unknown)
    set_status = env.perp.set_market_status
    refused(env, "perp: not configurator", set_status, env.eth, 2, SETTLE_PRICE, sender=deployer)


def test_set_market_status__settled_market__close_and_resettle_refused(env, deployer):
    settle(env, deployer)
    refused(env, "perp: market settled", env.configurator.close_market, env.eth, sender=deployer)
    for price in (SETTLE_PRICE, OPEN_PRICE):
        settle_refused(env, "perp: market settled", price, deployer)
    assert status(env) == (2, SETTLE_PRICE)


# ---------------------------------------------------------------- a settled market


def test_settle_market__fees_accrue_to_settlement_then_stop(
    env, funded_trader, counterparty, deployer
):
    opened(env, funded_trader, True, env.usd(3_000), 30_000 * WAD)
    opened(env, counterparty, False, env.usd(1_000), 10_000 * WAD)
    elapse(env, 3_600, env.eth, OPEN_PRICE)
    borrow, f_long, f_short = env.perp.current_rates(env.eth)
    assert borrow > 0 and f_long < 0 < f_short  # longs are heavier: they pay
    stored = Indices.of_state(env.reader.market_state(env.eth))
    # accrued to the head, where the next block is pinned
    accrued = Indices.of_state(env.perp.current_indices(env.eth))
    assert accrued.borrow > stored.borrow and accrued.funding_long < stored.funding_long

    tx = settle(env, deployer)

    state = env.reader.market_state(env.eth)
    assert state.last_update == tx.timestamp
    assert Indices.of_state(state) == accrued  # fees accrued to the settlement first
    assert env.perp.current_rates(env.eth) == (0, 0, 0)
    assert all(value == 0 for value in env.reader.rates(env.eth))
    env.chain.mine(deltatime=86_400)
    assert Indices.of_state(env.perp.current_indices(env.eth)) == accrued
    assert env.reader.market_state(env.eth) == state


@pytest.mark.parametrize("oracle", ["fresh_elsewhere", "stale"])
@SIDES
def test_decrease__settled__withdrawal_and_close_at_settlement_price(
    env, funded_trader, deployer, cfg, oracle, is_long
):
    pos = opened(env, funded_trader, is_long, env.usd(2_000), 30_000 * WAD + 123_456_789)
    settle(env, deployer)
    if oracle == "stale":
        go_stale(env)  # no keeper price needed, not even for a collateral withdrawal
    else:
        push_fresh(env, env.eth, DOWN_PRICE)
        pin(env)
    before = money(env, funded_trader)
    tx = decrease(env, funded_trader, is_long, env.usd(100), 10_000 * WAD)
    change = model_decrease(env, pos, is_long, env.usd(100), 10_000 * WAD, SETTLE_PRICE, cfg)
    assert (change.pnl > 0) == is_long
    assert_change(env, tx, change, funded_trader, is_long, before)

    pos, frozen = change.position, indices_used(env, env.eth)
    env.chain.mine(deltatime=3_600)
    pin(env)
    before = money(env, funded_trader)
    tx = decrease(env, funded_trader, is_long, 0, pos.size_usd)
    assert indices_used(env, env.eth) == frozen
    change = model_decrease(env, pos, is_long, 0, pos.size_usd, SETTLE_PRICE, cfg)
    assert change.borrow_fee == 0 and tx.return_value == change.amount_out
    assert_change(env, tx, change, funded_trader, is_long, before)


@SIDES
def test_increase__settled__new_exposure_refused_collateral_add_allowed(
    env, funded_trader, deployer, cfg, is_long
):
    pos = opened(env, funded_trader, is_long, env.usd(1_000), 10_000 * WAD)
    settle(env, deployer)
    go_stale(env)
    args = (env, is_long, env.usd(100), 1_000 * WAD)
    refused(env, "perp: market closing", grow, *args, sender=funded_trader)
    before = money(env, funded_trader)
    tx = grow(env, is_long, env.usd(50), 0, sender=funded_trader)
    change = model_increase(env, pos, is_long, env.usd(50), 0, 0, cfg)  # reads no price
    assert_change(env, tx, change, funded_trader, is_long, before)


@SIDES
def test_settle_position__settled__anyone_pays_owner_what_a_full_close_pays(
    env, funded_trader, attacker, deployer, cfg, is_long
):
    pos = opened(env, funded_trader, is_long, env.usd(2_000), 30_000 * WAD + 123_456_789)
    settle(env, deployer)
    go_stale(env)
    with isolated(env.chain):
        own_close = decrease(env, funded_trader, is_long, 0, pos.size_usd).return_value
    pin(env)
    before = money(env, funded_trader)
    attacker_tokens = env.token.balanceOf(attacker)

    tx = env.risk.settle_position(funded_trader, env.eth, is_long, sender=attacker)

    change = model_decrease(env, pos, is_long, 0, pos.size_usd, SETTLE_PRICE, cfg)
    assert tx.return_value == change.amount_out == own_close > 0
    assert_change(env, tx, change, funded_trader, is_long, before)
    assert env.token.balanceOf(attacker) == attacker_tokens


@pytest.mark.parametrize("market_status", ["active", "closing"])
def test_settle_position__market_not_settled__refused(
    env, funded_trader, attacker, deployer, market_status
):
    opened(env, funded_trader, True, env.usd(1_000), 10_000 * WAD)
    if market_status == "closing":
        env.configurator.close_market(env.eth, sender=deployer)
    args = (funded_trader, env.eth, True)
    call = env.risk.settle_position
    refused(env, "risk: market not settled", call, *args, sender=attacker, others=(funded_trader,))


def test_settle_position__no_position__refused(env, funded_trader, attacker, deployer):
    opened(env, funded_trader, True, env.usd(1_000), 10_000 * WAD)
    settle(env, deployer)
    call = env.risk.settle_position
    for account, is_long in ((funded_trader, False), (attacker, True)):
        args = (account, env.eth, is_long)
        refused(env, "risk: no position", call, *args, sender=attacker, others=(funded_trader,))


def test_liquidate__settled__at_settlement_price_with_stale_oracle(
    env, funded_trader, counterparty, deployer, liquidator, cfg
):
    risk = risk_of(env.configurator, env.eth)
    size = 10_000 * WAD
    pos = opened(env, funded_trader, True, env.usd(1_000), size)  # 10x long
    opened(env, counterparty, False, env.usd(1_000), size)
    price = BASE * 9_040 // BPS + 1  # 9.6 % down: the long below maintenance, the short healthy
    settle(env, deployer, price)
    go_stale(env)
    assert env.perp.close_price(env.eth, True) == env.perp.close_price(env.eth, False) == price
    assert env.perp.is_liquidatable(funded_trader, env.eth, True)
    assert not env.perp.is_liquidatable(counterparty, env.eth, False)
    args, others = (counterparty, env.eth, False, liquidator), (counterparty,)
    liquidate = env.perp.liquidate
    refused(env, "perp: position healthy", liquidate, *args, sender=liquidator, others=others)
    pool, collateral, escrow, insurance = buckets(env.vault)
    receiver_tokens = env.token.balanceOf(liquidator)
    claimable, claimable_total = env.vault.claimable(liquidator), env.vault.claimable_amount()

    tx = env.perp.liquidate(funded_trader, env.eth, True, liquidator, sender=liquidator)

    idx = indices_used(env, env.eth)
    remaining, maintenance = health(pos, True, price, idx, cfg, env.scale)
    assert remaining < maintenance
    left = left_of(pos, True, price, idx, cfg, env.scale)
    fee = liquidation_fee(size, risk, env.scale)
    assert left >= fee  # the position pays its liquidator in full
    [log] = tx.decode_logs(env.perp.Liquidation)
    assert (log.account, log.price, log.size_usd) == (funded_trader.address, price, size)
    assert (log.collateral, log.remaining) == (pos.collateral, remaining)
    assert log.maintenance == maintenance
    assert (log.fee, log.fee_from_insurance) == (fee, 0)
    assert env.perp.get_position(funded_trader, env.eth, True).size_usd == 0
    pool += pos.collateral - fee
    assert buckets(env.vault) == (pool, collateral - pos.collateral, escrow, insurance)
    # the fee is credited in the Vault, not transferred
    assert env.token.balanceOf(liquidator) == receiver_tokens
    assert env.vault.claimable(liquidator) == claimable + fee
    assert env.vault.claimable_amount() == claimable_total + fee
    assert env.vault.is_solvent()


@SIDES
def test_position_info__settled__mark_price_is_settlement_price(
    env, funded_trader, deployer, is_long
):
    pos = opened(env, funded_trader, is_long, env.usd(2_000), 30_000 * WAD + 123_456_789)
    push_fresh(env, env.eth, UP_PRICE)  # the oracle says something else
    settle(env, deployer)
    expected_pnl = pnl_wad(pos.size_usd, pos.size_tokens, SETTLE_PRICE, is_long)
    for _ in ("fresh", "stale"):
        info = env.reader.position_info(funded_trader, env.eth, is_long)
        assert (info.mark_price, info.pnl) == (SETTLE_PRICE, expected_pnl)
        values = env.perp.position_values(funded_trader, env.eth, is_long, SETTLE_PRICE)
        assert info.remaining_collateral == values.remaining
        assert info.maintenance_margin == values.maintenance
        go_stale(env)


def test_settle_position__everyone_settled__open_interest_zero_reserve_released_solvent(
    env, funded_trader, counterparty, hedger, attacker, deployer
):
    opened(env, funded_trader, True, env.usd(2_000), 30_000 * WAD + 123_456_789)
    opened(env, counterparty, False, env.usd(1_000), 12_345 * WAD + 6_789)
    opened(env, hedger, True, env.usd(1_000), 20_000 * WAD, BTC_PRICE, env.btc)
    eth_reserve = to_tokens(env.reader.market_state(env.eth).reserved_usd, env.scale, True)
    btc_reserve = to_tokens(env.reader.market_state(env.btc).reserved_usd, env.scale, True)
    reserved = env.vault.reserved_amount()
    assert reserved == eth_reserve + btc_reserve and eth_reserve > 0
    settle(env, deployer)
    go_stale(env)

    env.risk.settle_position(funded_trader, env.eth, True, sender=attacker)
    env.risk.settle_position(counterparty, env.eth, False, sender=attacker)

    assert env.perp.open_interest(env.eth, True) == env.perp.open_interest(env.eth, False) == (0, 0)
    assert env.reader.market_state(env.eth).reserved_usd == 0
    assert env.vault.reserved_amount() == reserved - eth_reserve == btc_reserve
    assert env.perp.open_interest(env.btc, True)[0] == 20_000 * WAD
    assert env.vault.is_solvent()


# ---------------------------------------------------------------- found bugs (fixed)


@pytest.mark.parametrize("setter", ["set_market_config", "set_risk_config"])
def test_set_market_config__settled_market__fees_stay_stopped(
    env, funded_trader, counterparty, deployer, setter
):
    opened(env, funded_trader, True, env.usd(3_000), 30_000 * WAD)
    opened(env, counterparty, False, env.usd(1_000), 10_000 * WAD)
    settle(env, deployer)
    frozen = Indices.of_state(env.reader.market_state(env.eth))
    pin(env)
    c = env.configurator
    args = (c.configs(env.eth),) if setter == "set_market_config" else (c.risk_configs(env.eth),)
    # a settled market's settings are final: the change is refused (it would restart fees)
    refused(env, "perp: market settled", getattr(c, setter), env.eth, *args, sender=deployer)
    assert status(env) == (2, SETTLE_PRICE)
    env.chain.mine(deltatime=3_600)
    assert env.perp.current_rates(env.eth) == (0, 0, 0)
    assert Indices.of_state(env.perp.current_indices(env.eth)) == frozen


@pytest.mark.parametrize("oracle", ["fresh_elsewhere", "stale"])
def test_pool_value__settled_market_with_open_position__valued_at_settlement_price(
    env, funded_trader, deployer, oracle
):
    pos = opened(env, funded_trader, True, env.usd(3_000), 30_000 * WAD)
    settle(env, deployer)
    if oracle == "stale":
        go_stale(env)
    else:
        push_fresh(env, env.eth, OPEN_PRICE)
    idx = Indices.of_state(env.perp.current_indices(env.eth))
    # pool value = pool + pending borrowing (from the side sums) - PnL the position closes with
    pending_borrow = pos.size_usd * idx.borrow // WAD - pos.size_usd * pos.borrow_index // WAD
    pnl = pnl_wad(pos.size_usd, pos.size_tokens, SETTLE_PRICE, True)
    expected = env.vault.pool_amount() * env.scale + pending_borrow - pnl
    assert pnl > 0
    assert (env.perp.pool_value(True), env.perp.pool_value(False)) == (expected, expected)
