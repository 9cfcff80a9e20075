"""Rules the review added to Perp (commit e71fd1f), each attacked head-on. The Configurator's
bound on the keeper fee is in test_configurator_bounds.py.

1. An ADL close is not refused for what remains (`_decrease(..., checked)`: `adl_decrease`
   passes False). A partial ADL close whose remainder breaks min collateral or max leverage
   goes through and pays the owner as the helpers model of a decrease says; the owner's own
   decrease of the same size in the same second is refused with `_check_position`'s reason.
2. A liquidation's insurance cut never exceeds the collateral (`_liquidate`):
       kept = min(close fee + equity, collateral);  cut = floor((kept - fee) x cut_bps / 10_000)
   (before the fix: floor((close fee + equity - fee) x cut_bps / 10_000)), equity = what a
   full close would leave. Equity + close fee exceeds the collateral only when PnL and funding
   exceed the pending fees while the position is liquidatable, so the collateral must have
   shrunk below maintenance + close fee after the open: by fees settled into it (a
   collateral-only add settles them with no check) or by a maintenance raised over it.
   With the collateral below the keeper fee, nothing is kept beyond the fee: no cut at all.
3. A close never realises more than the traders' cap (`_cap_profit`):
       realised = min(profit x cap // side profit if side profit > cap else profit, cap // scale)
   cap = floor(pool amount recorded by the close's accrual x scale x traders_bps / 10_000).
   A winner netted by a loser on its side claims the cap, not its profit.
4. A larger reserve factor must fit the pool (`configure_market`): refused "perp: reserve
   exceeded" when reserved + (new - old market reserve) > pool amount; a lower factor is
   always accepted, even while the pool is already below its reserve. A market's reserve is
   ceil(ceil(open interest x factor / 10_000) / scale) token units.

One protocol with params.RISK_CONFIG (insurance cut 10 %) and the $1M pool; Vault buckets
are checked exactly, with the cut of each position fee going to the insurance fund. Time is
pinned: every transaction of a scene is mined in the second of the last price push, and the
model takes the indices the transaction stored (`indices_used`).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from helpers import (
    BPS,
    WAD,
    Position,
    assert_refused,
    borrow_fee_wad,
    bps_of,
    buckets,
    build_env,
    ceil_div,
    check_position,
    config_of,
    decrease,
    elapse,
    expect_update,
    fast_reverts,  # noqa: F401 (autouse fixture)
    funding_wad,
    increase,
    indices_used,
    largest,
    mul_div,
    open_position,
    pending,
    pin,
    pnl_tokens,
    pnl_wad,
    position_fee,
    push_fresh,
    refused,
    to_tokens,
)
from perpool import params
from perpool.events import settled as decode_settled

BASE = params.LOCAL_MARKETS["ETH"]  # the seeded price, anchor of the oracle's window
ODD = 12_345_678_901_234_567  # wei of USD that make the roundings matter
CUT_BPS = params.RISK_CONFIG["insurance_cut_bps"]
MAX_RATE = WAD // 3_600 // 100  # the Configurator's bound on the rate factors: 1 %/h
UP = BASE * 10_190 // BPS + ODD // 3  # +1.9 %: under the 2 % that turns the spread on


@pytest.fixture(scope="module")
def renv(project, deployer, keeper, lp, chain):
    return build_env(project, deployer, keeper, lp, chain, 6, risk_config=params.RISK_CONFIG)


@pytest.fixture(scope="module")
def alice(renv, trader):
    renv.fund(trader)
    return trader


@pytest.fixture(scope="module")
def bob(renv, accounts):
    renv.fund(accounts[7])
    return accounts[7]


@pytest.fixture(scope="module")
def liquidator(accounts):
    return accounts[9]


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(renv, alice, bob, liquidator, deployer, keeper, lp):
    """Module- and session-scoped fixtures before any test (no snapshot rebase)."""


# ---------------------------------------------------------------- steps and model


def set_market(env, deployer, **overrides):
    c = {**config_of(env.configurator, env.eth), **overrides}
    pin(env)
    return env.configurator.set_market_config(env.eth, c, sender=deployer)


def set_risk(env, deployer, **overrides):
    pin(env)
    env.configurator.set_risk_config(env.eth, {**params.RISK_CONFIG, **overrides}, sender=deployer)


def position(env, owner, is_long=True) -> Position:
    return Position.of(env.perp.get_position(owner, env.eth, is_long))


def opened(env, owner, is_long, collateral_usd, size, price=None) -> Position:
    if price is not None:
        push_fresh(env, env.eth, price)
    pin(env)
    open_position(env, owner, env.eth, is_long, env.usd(collateral_usd), size)
    return position(env, owner, is_long)


def no_spread(env, price: int) -> None:
    assert env.oracle.get_price(env.eth, True) == env.oracle.get_price(env.eth, False) == price


def cut_of(amount: int) -> int:
    """The insurance fund's cut, rounded down."""
    return bps_of(amount, CUT_BPS, False)


def reserve_tokens(env, open_interest: int, factor: int) -> int:
    """A market's reserve in token units: open interest x factor, rounded up twice."""
    return to_tokens(bps_of(open_interest, factor, True), env.scale, True)


def market_oi(env) -> int:
    return sum(env.perp.open_interest(env.eth, side)[0] for side in (True, False))


def settled_log(env, tx):
    [log] = [x for x in tx.decode_logs(env.vault.Settled) if x.contract_address == env.vault.address]
    return decode_settled(log)


def maintenance(env, size: int) -> int:
    """Perp._maintenance: the rate of the size's tier (or the base rate), at least the floor."""
    c, r = env.configurator.configs(env.eth), env.configurator.risk_configs(env.eth)
    bps = c.maintenance_margin_bps
    for threshold, rate in zip(r.tier_threshold_usd, r.tier_maintenance_bps):
        if threshold == 0 or size < threshold:
            break
        bps = rate
    return max(bps_of(size, bps, True), c.min_maintenance_usd)


# ------------------------------------------------ 1. ADL: not refused for what remains

ADL_TRIGGER = {"max_pnl_factor_for_adl_bps": 10, "min_pnl_factor_after_adl_bps": 5}
ADL_SIZE = 10_000 * WAD + 7


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"min_collateral_usd": 6_000 * WAD}, "perp: collateral below min"),
        ({"max_leverage_bps": 150_000}, "perp: leverage too high"),
    ],
    ids=["min_collateral_above_it", "max_leverage_below_it"],
)
def test_auto_deleverage__remainder_invalid_for_the_owners_decrease__partial_close_goes_through(
    renv, alice, keeper, deployer, overrides, reason
):
    """A $100k long on $5k (20x) in profit; ADL from 0.1 % of the pool down to 0.05 %; then
    the market's min collateral raised above the position's $4,900 (or its max leverage cut
    to 15x, below the remainder's 18x)."""
    env, perp, vault = renv, renv.perp, renv.vault
    pos = opened(env, alice, True, 5_000, 100_000 * WAD + ODD, BASE)
    push_fresh(env, env.eth, UP)
    no_spread(env, UP)
    set_risk(env, deployer, **ADL_TRIGGER)
    set_market(env, deployer, **overrides)
    cfg = config_of(env.configurator, env.eth)
    assert position(env, alice) == pos  # the settings changed, the position did not
    state = env.risk.adl_state(env.eth, True)
    assert state.triggered and state.pnl_usd * BPS > 10 * state.pool_usd
    assert ADL_SIZE < env.risk.adl_size_limit(alice, env.eth, True)

    # the owner's own decrease of that size, in the same second: refused for what remains
    pin(env)
    assert_refused(
        env, (alice, keeper), reason,
        perp.decrease_position, env.eth, True, 0, ADL_SIZE, 0, alice, sender=alice,
    )
    (p, c, e, i), balance = buckets(vault), env.token.balanceOf(alice)
    pin(env)

    tx = env.risk.auto_deleverage(alice, env.eth, True, ADL_SIZE, sender=keeper)

    assert tx.return_value == ADL_SIZE
    idx = indices_used(env, env.eth)
    change = decrease(pos, True, 0, ADL_SIZE, UP, idx, cfg["position_fee_bps"], env.scale)
    # the model's own check refuses the remainder for the same reason
    assert refused(check_position, change.position, True, UP, idx, cfg, env.scale) == reason
    assert change.pnl > 0 and change.amount_out > 0 and change.bad_debt == 0
    # the profit pays the fees and goes out: the remainder keeps the collateral it had
    assert change.position.collateral == pos.collateral
    assert change.position.size_usd == pos.size_usd - ADL_SIZE
    if "min_collateral_usd" in overrides:
        assert change.position.collateral * env.scale < cfg["min_collateral_usd"]
    else:
        assert change.position.size_usd * BPS > cfg["max_leverage_bps"] * pos.collateral * env.scale
    [update] = tx.decode_logs(perp.PositionUpdate)
    expect_update(update, change, alice, env.eth, True)
    assert position(env, alice) == change.position
    cut = cut_of(change.position_fee)
    assert buckets(vault) == (p + change.pool_delta - cut, c + change.collateral_delta, e, i + cut)
    assert env.token.balanceOf(alice) == balance + change.amount_out
    [log] = tx.decode_logs(env.risk.AutoDeleverage)
    assert (log.size_delta, log.amount_out) == (ADL_SIZE, change.amount_out)


# ------------------------------------------------ 2. liquidation: the cut within the collateral


def values(env, pos: Position, price: int, idx, fee_bps: int) -> dict:
    """Perp._values of a long."""
    v = {
        "pnl": pnl_wad(pos.size_usd, pos.size_tokens, price, True),
        "borrowing_fee": borrow_fee_wad(pos, idx),
        "funding": funding_wad(pos, True, idx),
        "close_fee": bps_of(pos.size_usd, fee_bps, True),
        "maintenance": maintenance(env, pos.size_usd),
    }
    v["remaining"] = (
        pos.collateral * env.scale + v["pnl"] + v["funding"] - v["borrowing_fee"] - v["close_fee"]
    )
    return v


def aim_price(env, pos: Position, fee_bps: int) -> int:
    """A price with PnL half-way from 0 to the point where the long turns healthy:
    collateral + PnL - close fee = maintenance."""
    close_fee = bps_of(pos.size_usd, fee_bps, True)
    room = maintenance(env, pos.size_usd) + close_fee - pos.collateral * env.scale
    assert room > 0  # collateral < maintenance + close fee: liquidatable at any PnL below room
    return ceil_div((pos.size_usd + room // 2) * WAD, pos.size_tokens)


def liquidate_in_profit(env, owner, liquidator, pos: Position, price: int) -> tuple[int, int]:
    """Liquidate the long `pos` at `price` (just pushed), check the capped cut; return
    (keeper fee, cut)."""
    perp, vault = env.perp, env.vault
    fee_bps = env.configurator.configs(env.eth).position_fee_bps
    r = env.configurator.risk_configs(env.eth)
    assert r.insurance_cut_bps == CUT_BPS
    no_spread(env, price)
    v = perp.position_values(owner, env.eth, True, price)
    assert v.pnl > 0 and v.remaining < v.maintenance
    assert perp.is_liquidatable(owner, env.eth, True)
    (p, c, e, i), claimable = buckets(vault), vault.claimable(liquidator)
    insurance_before = vault.insurance_amount()
    pin(env)

    tx = perp.liquidate(owner, env.eth, True, liquidator, sender=liquidator)

    idx = indices_used(env, env.eth)
    model = values(env, pos, price, idx, fee_bps)
    assert {k: getattr(v, k) for k in model} == model  # the view saw this second's fees
    borrow, paid, received = pending(pos, True, idx, env.scale)
    close_fee = position_fee(pos.size_usd, fee_bps, env.scale)
    pnl = pnl_tokens(pos.size_usd, pos.size_tokens, price, True, env.scale)
    equity = pos.collateral + pnl + received - borrow - close_fee - paid
    fee_usd = r.liquidation_fee_usd + bps_of(pos.size_usd, r.liquidation_fee_bps, False)
    fee = to_tokens(fee_usd, env.scale, False)  # a payout: rounded down
    assert equity > fee  # the position pays the keeper: no top-up
    # the case: the close fee and the equity exceed the collateral (a profit is forfeited)
    assert close_fee + equity > pos.collateral
    kept = min(close_fee + equity, pos.collateral)
    cut = cut_of(kept - fee) if kept > fee else 0
    old_cut = cut_of(close_fee + equity - fee)
    assert cut == (cut_of(pos.collateral - fee) if pos.collateral > fee else 0) < old_cut
    [ev] = tx.decode_logs(perp.Liquidation)
    assert (ev.price, ev.size_usd, ev.collateral) == (price, pos.size_usd, pos.collateral)
    assert (ev.remaining, ev.maintenance) == (model["remaining"], model["maintenance"])
    assert (ev.fee, ev.fee_from_insurance, ev.insurance_cut) == (fee, 0, cut)
    assert list(tx.decode_logs(perp.BadDebt)) == []
    # the collateral leaves its bucket; the keeper's fee is credited; the fund takes the cut
    assert buckets(vault) == (p + pos.collateral - fee - cut, c - pos.collateral, e, i + cut)
    assert vault.insurance_amount() == insurance_before + cut
    assert vault.claimable(liquidator) == claimable + fee
    assert position(env, owner) == Position()
    assert vault.is_solvent()
    return fee, cut


@pytest.mark.parametrize(
    "target_usd", [1_500, 150], ids=["collateral_above_the_fee", "collateral_below_the_fee"]
)
def test_liquidate__fees_settled_into_collateral_then_price_up__cut_capped_at_the_collateral(
    renv, alice, bob, liquidator, deployer, target_usd
):
    """A $480k long at ~48x pays borrowing (2x reserve on a $1M pool: ~98 % use) and funding
    (a $10k short against it) at the 1 %/h bounds for ~50-60 min, until its collateral net of
    the pending fees is ~`target_usd` - $100; a $100 collateral-only add settles them (no
    check: the position is already liquidatable). A rise of ~0.15-0.3 % then gives it a
    profit, still below maintenance: equity + close fee > collateral. At $150 the collateral
    is below the keeper fee ($242): the pool pays the rest of the fee, the fund cuts nothing."""
    env, perp = renv, renv.perp
    set_market(
        env, deployer, reserve_factor_bps=20_000, borrowing_factor=MAX_RATE,
        funding_factor=MAX_RATE, max_funding_rate=MAX_RATE,
    )
    fee_bps = env.configurator.configs(env.eth).position_fee_bps
    opened(env, alice, True, 10_100, 480_000 * WAD + ODD, BASE)
    opened(env, bob, False, 1_000, 10_000 * WAD)  # the long now pays funding
    pos = position(env, alice)
    borrow_rate, funding_long, _ = perp.current_rates(env.eth)
    assert borrow_rate > 0 and funding_long < 0
    per_second = mul_div(pos.size_usd, borrow_rate - funding_long, WAD)  # WAD USD the long owes
    add, target = env.usd(100), env.usd(target_usd)
    elapse(env, (pos.collateral + add - target) * env.scale // per_second, env.eth, BASE)
    assert perp.is_liquidatable(alice, env.eth, True)
    pin(env)

    tx = perp.increase_position(env.eth, True, add, 0, 0, sender=alice)

    idx = indices_used(env, env.eth)
    change = increase(pos, True, add, 0, 0, idx, fee_bps, env.scale)
    [update] = tx.decode_logs(perp.PositionUpdate)
    expect_update(update, change, alice, env.eth, True)
    assert change.borrow_fee > 0 and change.funding < 0
    settled = position(env, alice)
    assert settled == change.position
    assert abs(settled.collateral - target) < env.usd(50)
    price = aim_price(env, settled, fee_bps)
    push_fresh(env, env.eth, price)
    fee, cut = liquidate_in_profit(env, alice, liquidator, settled, price)
    if target_usd == 1_500:
        assert settled.collateral > fee and cut > 0
    else:
        assert settled.collateral < fee and cut == 0


def test_liquidate__maintenance_raised_over_the_position_then_price_up__cut_capped_at_collateral(
    renv, alice, liquidator, deployer
):
    """The nearest case with no fees at all: a ~48x long, then the maintenance raised to 3 %
    (max leverage 30x, no tiers) over its ~2 % collateral; a 0.5 % rise leaves it in profit
    and liquidatable."""
    env = renv
    pos = opened(env, alice, True, 2_110, 100_000 * WAD + ODD, BASE)
    set_risk(env, deployer, tier_threshold_usd=[0, 0, 0], tier_maintenance_bps=[0, 0, 0])
    set_market(env, deployer, max_leverage_bps=300_000, maintenance_margin_bps=300)
    assert env.perp.maintenance_margin(env.eth, pos.size_usd) == maintenance(env, pos.size_usd)
    price = aim_price(env, pos, env.configurator.configs(env.eth).position_fee_bps)
    push_fresh(env, env.eth, price)
    liquidate_in_profit(env, alice, liquidator, pos, price)


# ------------------------------------------------ 3. profit cap: at most the cap per close

HIGH = BASE * 10_190 // BPS  # the loser's entry
MID = BASE * 10_100 // BPS + ODD  # between the entries: the winner gains ~1 %, the loser ~-0.9 %


@pytest.mark.parametrize("cap_bps", [5, 1], ids=["side_below_cap", "side_above_cap"])
def test_decrease__winner_netted_by_a_loser_on_its_side__realises_exactly_the_cap(
    renv, alice, bob, deployer, cap_bps
):
    """Side profit ~$117 (winner ~$1,000, loser ~-$883), pool ~$1M. Cap 0.05 % (~$500): the
    side is below it, so no scaling, but the winner's profit is above it. Cap 0.01 % (~$100):
    the side is above it, and the scaled profit (~$1,000 x 100 / 117) still is too."""
    env, perp, vault = renv, renv.perp, renv.vault
    set_risk(env, deployer, max_pnl_factor_for_traders_bps=cap_bps)
    win = opened(env, alice, True, 10_000, 100_000 * WAD + ODD, BASE)
    lose = opened(env, bob, True, 10_000, 100_000 * WAD + 3, HIGH)
    push_fresh(env, env.eth, MID)
    no_spread(env, MID)
    usd, tokens = perp.open_interest(env.eth, True)
    side = pnl_wad(usd, tokens, MID, True)
    own = pnl_wad(win.size_usd, win.size_tokens, MID, True)
    pool = vault.pool_amount()
    cap = pool * env.scale * cap_bps // BPS
    assert pnl_wad(lose.size_usd, lose.size_tokens, MID, True) < 0 < side < own
    assert cap < own
    profit = own // env.scale  # the winner's profit in token units, rounded down
    if side <= cap:
        assert cap_bps == 5  # not scaled: the profit alone is above the cap
    else:
        assert cap_bps == 1 and mul_div(profit, cap, side) > cap // env.scale  # scaled, still above
    fee_bps = env.configurator.configs(env.eth).position_fee_bps
    (p, c, e, i), balance = buckets(vault), env.token.balanceOf(alice)
    pin(env)

    tx = perp.decrease_position(env.eth, True, 0, win.size_usd, 0, alice, sender=alice)

    assert env.reader.market_state(env.eth).utilisation_pool_amount == pool  # the cap's pool amount
    idx = indices_used(env, env.eth)
    plain = decrease(win, True, 0, win.size_usd, MID, idx, fee_bps, env.scale)
    assert plain.pnl == profit > cap // env.scale
    realised = cap // env.scale
    amount_out = win.collateral + realised - plain.position_fee - plain.borrow_fee
    change = replace(
        plain, pnl=realised, amount_out=amount_out, pool_delta=win.collateral - amount_out
    )
    [update] = tx.decode_logs(perp.PositionUpdate)
    expect_update(update, change, alice, env.eth, True)
    assert update.pnl == cap // env.scale
    assert tx.return_value == amount_out
    cut = cut_of(plain.position_fee)
    # the pool pays the capped profit and keeps the fees (less the fund's cut)
    assert buckets(vault) == (p + change.pool_delta - cut, c - win.collateral, e, i + cut)
    assert change.pool_delta == plain.position_fee + plain.borrow_fee - realised
    assert env.token.balanceOf(alice) == balance + amount_out
    assert position(env, alice) == Position() and position(env, bob) == lose


# ------------------------------------------------ 4. reserve factor: a raise must fit the pool


def refuse_factor(env, accounts, deployer, factor: int) -> None:
    c = {**config_of(env.configurator, env.eth), "reserve_factor_bps": factor}
    pin(env)
    assert_refused(
        env, accounts, "perp: reserve exceeded",
        env.configurator.set_market_config, env.eth, c, sender=deployer,
    )


def accept_factor(env, deployer, factor: int, oi: int) -> None:
    """Set `factor` and check the reserve moves to the formula's, in the market and the Vault."""
    old = env.configurator.configs(env.eth).reserve_factor_bps
    reserved, pool = env.vault.reserved_amount(), env.vault.pool_amount()
    tx = set_market(env, deployer, reserve_factor_bps=factor)
    delta = reserve_tokens(env, oi, factor) - reserve_tokens(env, oi, old)
    assert env.vault.reserved_amount() == reserved + delta
    assert env.reader.market_state(env.eth).reserved_usd == bps_of(oi, factor, True)
    assert env.vault.pool_amount() == pool  # the reserve alone moves
    log = settled_log(env, tx)
    assert log.reserved_delta == delta
    assert (log.pool_delta, log.collateral_delta, log.insurance_delta) == (0, 0, 0)


def test_set_market_config__reserve_factor_raised_past_the_pool__refused_until_it_fits_exactly(
    renv, alice, bob, lp, deployer
):
    """$600k of open interest at 100 %: 180 % would reserve $1.08M of a ~$1M pool. Refused;
    the LP then deposits the gap to the unit, and 180 % is accepted with reserved == pool
    (only a reserve above the pool is refused), one more bp refused again, lowering accepted."""
    env, vault = renv, renv.vault
    accounts = (alice, bob, lp, deployer)
    opened(env, alice, True, 30_000, 300_000 * WAD + ODD, BASE)
    opened(env, bob, False, 30_000, 300_000 * WAD)
    oi = market_oi(env)
    assert vault.reserved_amount() == reserve_tokens(env, oi, 10_000)
    factor = 18_000
    needed = reserve_tokens(env, oi, factor)  # nothing else is reserved
    assert needed > vault.pool_amount()
    refuse_factor(env, accounts, deployer, factor)

    pin(env)
    vault.deposit(needed - vault.pool_amount(), 0, lp, sender=lp)
    assert vault.pool_amount() == needed
    assert reserve_tokens(env, oi, factor + 1) > needed
    refuse_factor(env, accounts, deployer, factor + 1)

    accept_factor(env, deployer, factor, oi)

    assert vault.reserved_amount() == vault.pool_amount() == needed
    refuse_factor(env, accounts, deployer, factor + 1)
    accept_factor(env, deployer, 1_000, oi)  # lowering
    assert vault.reserved_amount() == reserve_tokens(env, oi, 1_000)


def test_set_market_config__pool_below_its_reserve__lowering_accepted_raising_refused(
    renv, alice, bob, deployer
):
    """$4.5M long and short at a 10 % reserve, raised to the largest factor the pool fits
    (~11.2 %); +15 % in two pushes and the long closes with ~$660k of profit, which the pool
    pays while its reserve falls by only ~$500k: the pool ends below the reserve. Raising by
    one bp is refused; lowering is accepted, even to a reserve still above the pool."""
    env, perp, vault = renv, renv.perp, renv.vault
    accounts = (alice, bob, deployer)
    set_market(env, deployer, reserve_factor_bps=1_000)  # no open interest yet
    size = 4_500_000 * WAD
    opened(env, alice, True, 100_000, size, BASE)
    opened(env, bob, False, 100_000, size)
    oi = market_oi(env)
    pool = vault.pool_amount()
    top = largest(lambda f: reserve_tokens(env, oi, f) <= pool, 1_000, 20_000)
    assert 1_000 < top < 20_000 and reserve_tokens(env, oi, top + 1) > pool
    refuse_factor(env, accounts, deployer, top + 1)
    accept_factor(env, deployer, top, oi)  # raising within the pool

    push_fresh(env, env.eth, BASE * 10_750 // BPS)
    push_fresh(env, env.eth, BASE * 11_500 // BPS)
    pin(env)
    paid = perp.decrease_position(env.eth, True, 0, size, 0, alice, sender=alice).return_value
    assert paid > env.usd(700_000)  # $100k of collateral and ~$660k of profit
    oi = market_oi(env)
    assert oi == size
    assert vault.reserved_amount() == reserve_tokens(env, oi, top) > vault.pool_amount()

    refuse_factor(env, accounts, deployer, top + 1)
    accept_factor(env, deployer, top - 1, oi)
    accept_factor(env, deployer, 1_000, oi)
    assert vault.reserved_amount() == reserve_tokens(env, oi, 1_000) > vault.pool_amount()
