"""The worked examples of docs/risk.md, replayed on chain. Every expected number is derived
here from the published formulas, and the figures the doc prints are asserted too."""

from __future__ import annotations

import pytest

from helpers import Env, ceil_div, mul_div, pin, push_fresh
from perpool.prices import steps
from perpool import params
from perpool.deploy import deploy_protocol
from chain_isolation import isolated

WAD = params.WAD
BPS = params.BPS
CFG = params.MARKET_CONFIG
RISK = params.RISK_CONFIG
SIZE = 10_000 * WAD
ETH_TOKENS = SIZE * WAD // (3_000 * WAD)  # 3.333333333333333333


@pytest.fixture(scope="module")
def doc_env(project, deployer, keeper, lp, chain) -> Env:
    """The defaults with the Oracle's spread at 0, a $1,000,000 pool, 6-decimal collateral."""
    token = deployer.deploy(project.TestToken, "Test USD", "tUSD", 6)
    p = deploy_protocol(
        project, deployer, token, oracle_config={**params.ORACLE_CONFIG, "spread_bps": 0},
        updaters=(keeper,), chain=chain,
    )
    env = Env.of(p, keeper, chain)
    env.fund(lp, 2_000_000)
    p.vault.deposit(env.usd(1_000_000), 0, lp, sender=lp)
    return env


@pytest.fixture(scope="module", autouse=True)
def _fixtures_first(doc_env):
    """Module fixtures before any test (see docs/testing.md)."""


def _open_long(env: Env, trader, collateral_usd: int, size: int) -> int:
    """ETH back at $3,000, then the long opens ten seconds later (room for the observations
    of a stepped move, see `_move`); returns the open's time."""
    push_fresh(env, env.eth, 3_000 * WAD)
    env.fund(trader)
    t = env.chain.blocks.head.timestamp + 10
    pin(env, t)
    env.perp.increase_position(env.eth, True, env.usd(collateral_usd), size, 2**256 - 1, sender=trader)
    return t


def _move(env: Env, keeper, price: int, at: int) -> None:
    """ETH to `price` in the block at `at`, stepped through the Oracle's jump bound (2 %):
    one push per step, every one mined at `at`, observed one second apart and the last at
    `at` (observations may trail the block time; each must be newer than the last). The
    examples' timeline (open, move, close one second apart) is the docs'."""
    path = steps(env.oracle.price_data(env.eth).price, price, env.oracle.config().max_jump_bps)
    assert env.oracle.price_timestamp(env.eth) < at - len(path) + 1
    for k, step in enumerate(path):
        pin(env, at)
        env.oracle.set_prices([env.eth], [step], at - len(path) + 1 + k, sender=keeper)


def _borrow_fee_tokens(env: Env, size: int, seconds: int, pool_tokens: int) -> int:
    """Borrowing of a lone position over `seconds`, in token units (rounded up twice)."""
    reserved = ceil_div(size * CFG["reserve_factor_bps"], BPS)
    utilisation = min(ceil_div(reserved * WAD, pool_tokens * env.scale), WAD)
    rate = ceil_div(CFG["borrowing_factor"] * utilisation, WAD)
    return ceil_div(ceil_div(size * rate * seconds, WAD), env.scale)


def _close_at(env: Env, price: int) -> tuple[int, int]:
    """(realised PnL in tokens, the close fee in tokens) of the example long at `price`."""
    pnl = ETH_TOKENS * price // WAD - SIZE
    pnl_tokens = pnl // env.scale if pnl >= 0 else -ceil_div(-pnl, env.scale)
    return pnl_tokens, ceil_div(ceil_div(SIZE * CFG["position_fee_bps"], BPS), env.scale)


def test_doc_example__liquidation__keeper_fee_cut_and_pool(doc_env, funded_trader, keeper):
    env, eth = doc_env, doc_env.eth
    pool_at_open = env.vault.pool_amount()
    insurance_before = env.vault.insurance_amount()
    t = _open_long(env, funded_trader, 500, SIZE)
    open_fee = env.usd(10)
    assert env.vault.insurance_amount() - insurance_before == env.usd(1)  # 10 % of the fee
    pos = env.perp.get_position(funded_trader, eth, True)
    assert (pos.collateral, pos.size_tokens) == (env.usd(490), ETH_TOKENS)

    _move(env, keeper, 2_870 * WAD, t + 1)
    pin(env, t + 2)
    values = env.perp.position_values(funded_trader, eth, True, 2_870 * WAD)
    assert values.pnl == ETH_TOKENS * 2_870 - SIZE == -433_333333333333334290
    assert values.maintenance == 50 * WAD
    assert values.remaining < values.maintenance and values.remaining // WAD == 46

    before = (env.vault.pool_amount(), env.vault.insurance_amount(), env.token.balanceOf(keeper))
    credited = (env.vault.claimable(keeper), env.vault.claimable_amount())
    tx = env.perp.liquidate(funded_trader, eth, True, keeper, sender=keeper)
    pnl, close_fee = _close_at(env, 2_870 * WAD)
    borrow = _borrow_fee_tokens(env, SIZE, 2, pool_at_open)
    assert (pnl, borrow, close_fee) == (-env.usd(433.333334), 6, env.usd(10))
    left = env.usd(490) + pnl - borrow - close_fee
    assert left == 46_666660
    fee = (RISK["liquidation_fee_usd"] + SIZE * RISK["liquidation_fee_bps"] // BPS) // env.scale
    assert fee == env.usd(7)
    cut = (close_fee + left - fee) * RISK["insurance_cut_bps"] // BPS
    assert cut == 4_966666
    [log] = tx.decode_logs(env.perp.Liquidation)
    assert (log.fee, log.fee_from_insurance, log.insurance_cut) == (fee, 0, cut)
    assert env.vault.pool_amount() - before[0] == env.usd(490) - fee - cut == 478_033334
    assert env.vault.insurance_amount() - before[1] == cut
    # "the keeper can claim $7": credited in the Vault, no transfer until it claims
    assert env.token.balanceOf(keeper) == before[2]
    assert env.vault.claimable(keeper) - credited[0] == fee
    assert env.vault.claimable_amount() - credited[1] == fee
    pin(env, t + 3)
    assert env.vault.claim(keeper, sender=keeper).return_value == credited[0] + fee
    assert env.token.balanceOf(keeper) - before[2] == credited[0] + fee
    assert env.vault.claimable_amount() == credited[1] - credited[0]
    assert open_fee - open_fee // 10 == env.usd(9)  # what the pool kept of the open fee


@pytest.mark.parametrize("by_keeper", [True, False], ids=["liquidated", "closed_by_trader"])
def test_doc_example__bad_debt__insurance_first_then_lps(doc_env, funded_trader, keeper, by_keeper):
    env, eth = doc_env, doc_env.eth
    # the fund holds this example's $50 and the open's $1 cut
    fund_before = env.vault.insurance_amount()
    t = _open_long(env, funded_trader, 500, SIZE)
    env.vault.fund_insurance(env.usd(50), sender=funded_trader)
    fund = env.vault.insurance_amount()
    assert fund - fund_before == env.usd(51)

    _move(env, keeper, 2_800 * WAD, t + 1)
    pin(env, t + 2)
    before = (env.vault.pool_amount(), env.perp.bad_debt_total(), env.token.balanceOf(keeper))
    credited = (env.vault.claimable(keeper), env.vault.claimable_amount())
    if by_keeper:
        tx = env.perp.liquidate(funded_trader, eth, True, keeper, sender=keeper)
    else:
        tx = env.perp.decrease_position(eth, True, 0, SIZE, 0, funded_trader, sender=funded_trader)
    pnl, close_fee = _close_at(env, 2_800 * WAD)
    assert pnl == -env.usd(666.666667)
    shortfall = -(env.usd(490) + pnl - 6 - close_fee)
    assert shortfall == 186_666673
    fee = env.usd(7) if by_keeper else 0
    from_insurance = min(fee, fund)
    cover = min(shortfall, fund - from_insurance)
    [bad] = tx.decode_logs(env.perp.BadDebt)
    assert (bad.shortfall, bad.from_insurance, bad.from_lps) == (shortfall, cover, shortfall - cover)
    if by_keeper:
        assert (cover, shortfall - cover) == (env.usd(44), 142_666673)
    else:
        assert (cover, shortfall - cover) == (env.usd(51), 135_666673)
    # the keeper's fee (none on the trader's own close) is credited in the Vault, not paid
    assert env.token.balanceOf(keeper) == before[2]
    assert env.vault.claimable(keeper) - credited[0] == fee
    assert env.vault.claimable_amount() - credited[1] == fee
    assert env.perp.bad_debt_total() - before[1] == shortfall - cover
    assert env.vault.insurance_amount() == fund - from_insurance - cover
    assert env.vault.pool_amount() - before[0] == env.usd(490) + cover
    assert env.vault.is_solvent()


def test_doc_example__tiers__maintenance_by_size(doc_env):
    env, eth = doc_env, doc_env.eth

    def expected(size: int) -> int:
        bps = CFG["maintenance_margin_bps"]
        for threshold, rate in zip(RISK["tier_threshold_usd"], RISK["tier_maintenance_bps"]):
            if size >= threshold:
                bps = rate
        return max(ceil_div(size * bps, BPS), CFG["min_maintenance_usd"])

    figures = {
        999_999 * WAD: 4_999_995 * WAD // 1_000,
        1_000_000 * WAD: 10_000 * WAD,
        5_000_000 * WAD: 75_000 * WAD,
        20_000_000 * WAD: 500_000 * WAD,
        100 * WAD: 5 * WAD,
    }
    for size, doc in figures.items():
        assert env.perp.maintenance_margin(eth, size) == expected(size) == doc
    # one wei below the first threshold is still the base rate, rounded up
    below = 1_000_000 * WAD - 1
    assert env.perp.maintenance_margin(eth, below) == ceil_div(below * 50, BPS) == expected(below)


ADL_SIZE = 600_000 * WAD


def _crowded_long(env: Env, trader, keeper, risk: dict) -> int:
    """The ADL / profit cap setting: ETH's risk config changed, a $600,000 long with $60,000
    at $3,000, then ETH +10 % to $3,300 (five pushes within the jump bound, in one block).
    Returns the time after the push."""
    env.configurator.set_risk_config(env.eth, risk, sender=env.configurator.admin())
    t = _open_long(env, trader, 60_000, ADL_SIZE)
    _move(env, keeper, 3_300 * WAD, t + 1)
    pin(env, t + 2)
    return t + 2


def test_doc_example__adl__clamped_to_the_target(doc_env, funded_trader, keeper):
    env, eth = doc_env, doc_env.eth
    risk = {**RISK, "max_pnl_factor_for_adl_bps": 500, "min_pnl_factor_after_adl_bps": 300}
    _crowded_long(env, funded_trader, keeper, risk)
    pool = env.vault.pool_amount()
    assert pool == env.usd(1_000_540)  # $1,000,000 + the open fee less its 10 % cut
    state = env.risk.adl_state(eth, True)
    side_pnl = 200 * WAD * 3_300 - ADL_SIZE  # 200 ETH exactly
    assert state.pnl_usd == side_pnl == 60_000 * WAD
    assert state.pnl_factor_bps == side_pnl * BPS // (pool * env.scale) == 599  # 5.99 %
    assert state.triggered

    # the clamp, from docs/risk.md; the view runs at the head (1 s of borrowing since the open),
    # the transaction one second later (2 s)
    values = env.perp.position_values(funded_trader, eth, True, 3_300 * WAD)
    assert values.pnl == side_pnl and values.funding == 0
    f = 300

    def clamp_with(borrowing_fee: int) -> int:
        margin_pool = pool * env.scale + borrowing_fee + 4 * env.scale + 10**12
        numerator = side_pnl * BPS - f * margin_pool
        fee_term = ceil_div(f * CFG["position_fee_bps"] * ADL_SIZE, BPS)
        return numerator * ADL_SIZE // (side_pnl * BPS - f * side_pnl + fee_term)

    assert env.risk.adl_size_limit(funded_trader, eth, True) == clamp_with(values.borrowing_fee)
    rate = ceil_div(CFG["borrowing_factor"] * ceil_div(ADL_SIZE * WAD, env.usd(1_000_000) * env.scale), WAD)
    borrow_wad = ceil_div(ADL_SIZE * rate * 2, WAD)
    clamp = clamp_with(borrow_wad)
    assert clamp // WAD == 309_015  # the doc's ≈ $309,016

    owner_before = env.token.balanceOf(funded_trader)
    tx = env.risk.auto_deleverage(funded_trader, eth, True, ADL_SIZE, sender=keeper)
    assert tx.return_value == clamp
    [event] = tx.decode_logs(env.risk.AutoDeleverage)
    assert (event.size_requested, event.size_delta, event.pnl_factor_before_bps) == (ADL_SIZE, clamp, 599)
    after = env.risk.adl_state(eth, True)
    assert after.pnl_usd * BPS >= f * after.pool_usd  # never below the target...
    assert after.pnl_factor_bps == event.pnl_factor_after_bps == 300  # ...and just at it (3.00 %)
    # the owner is paid as a normal decrease of that size: profit pro rata, less the close fee
    # and the pending borrowing (collateral stays in the position)
    tokens_closed = 200 * WAD * clamp // ADL_SIZE
    profit = (tokens_closed * 3_300 - clamp) // env.scale
    close_fee = ceil_div(ceil_div(clamp * CFG["position_fee_bps"], BPS), env.scale)
    borrow = ceil_div(borrow_wad, env.scale)
    assert env.token.balanceOf(funded_trader) - owner_before == profit - close_fee - borrow
    assert profit // env.unit == 30_901  # ≈ $30,901 of profit paid


def test_doc_example__profit_cap__scales_a_crowded_side_profit(doc_env, funded_trader, keeper):
    env, eth = doc_env, doc_env.eth
    _crowded_long(env, funded_trader, keeper, {**RISK, "max_pnl_factor_for_traders_bps": 500})
    pool = env.vault.pool_amount()
    cap = pool * env.scale * 500 // BPS
    assert cap == 50_027 * WAD
    size = 100_000 * WAD
    tokens_closed = 200 * WAD * size // ADL_SIZE
    profit = (tokens_closed * 3_300 - size) // env.scale  # $9,999.999999
    capped = mul_div(profit, cap, 60_000 * WAD)
    assert capped == 8_337_833332  # $8,337.833332 instead of $9,999.999999
    before = env.token.balanceOf(funded_trader)
    tx = env.perp.decrease_position(eth, True, 0, size, 0, funded_trader, sender=funded_trader)
    [update] = tx.decode_logs(env.perp.PositionUpdate)
    assert update.pnl == capped
    paid = env.token.balanceOf(funded_trader) - before
    assert paid == capped - update.position_fee - update.borrow_fee


def test_doc_example__wind_down__settlement_price_within_the_reference_bound(doc_env, project, deployer):
    env, eth = doc_env, doc_env.eth
    feed = deployer.deploy(project.TestFeed, 8)
    feed.set_answer(3_000 * 10**8, 0, sender=deployer)
    env.oracle.set_reference_feed(eth, feed, 3_600, sender=deployer)
    bound = env.oracle.config().max_deviation_bps
    assert bound == 500
    low, high = 3_000 * WAD * (BPS - bound) // BPS, 3_000 * WAD * (BPS + bound) // BPS
    assert (low, high) == (2_850 * WAD, 3_150 * WAD)
    for price in (low, high):
        with isolated(env.chain):
            env.configurator.settle_market(eth, price, sender=deployer)
            assert (env.perp.market_status(eth), env.perp.settlement_price(eth)) == (2, price)
    for price in (low - 1, high + 1):
        with pytest.raises(Exception, match="config: price off reference"):
            env.configurator.settle_market(eth, price, sender=deployer)
    assert env.perp.market_status(eth) == 0
