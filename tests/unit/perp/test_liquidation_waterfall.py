"""Perp liquidation, part two: the keeper fee's top-up, the bad-debt waterfall (`_cover`:
the insurance fund first, then the LPs, `bad_debt_total` counting the LPs' part) on a
liquidation and on a trader's own full close, a zero keeper fee, self-liquidation, funding
beyond collateral, and liquidate_batch. The model and the fixtures are test_liquidation.py's
(its docstring has the formulas); every price stays within 2 % of the oracle's anchor unless
the test says otherwise.
"""

from __future__ import annotations

import pytest

from helpers import (
    BPS,
    WAD,
    ZERO_ADDRESS,
    position_fee,
    Position,
    assert_refused,
    buckets,
    ceil_div,
    close_position,
    expect_update,
    fast_reverts,  # noqa: F401 (autouse fixture)
    indices_at,
    indices_used,
    open_position,
    pin,
    predict_decrease,
    push_fresh,
    spread_price,
)
from perpool import params
from perpool.prices import steps
from perpool.events import settled as decode_settled
from chain_isolation import isolated
from test_liquidation import (  # noqa: F401 (fixtures)
    BASE,
    COLLATERAL_USD,
    ENTRY,
    ODD,
    SIZE,
    _module_fixtures_first,
    alice,
    bob,
    carol,
    cfg,
    expect_liquidation,
    healthy,
    left_of,
    liquidate,
    liquidation_fee,
    liquidator,
    next_second,
    no_spread,
    open_at,
    open_usual,
    predict_liquidation,
    predict_now,
    price_for_left,
    renv,
    reserve_tokens,
    risk,
    risk_of,
    set_insurance,
    snapshot,
    underwater,
)

MAX_RATE = WAD // 3_600 // 100  # the Configurator's cap on funding factor and rate: 1 %/h


def beyond_collateral(env, account, is_long, cfg, loss_usd=120):
    """Open the usual position; return it, the next second, its indices and a price at
    which a full close leaves a shortfall of about `loss_usd`."""
    pos = open_usual(env, account, is_long)
    ts, idx = next_second(env)
    price = price_for_left(pos, is_long, -env.usd(loss_usd), idx, cfg, env.scale)
    # beyond the collateral of a ~48x position is more than one push (the jump bound is its
    # 2 % initial margin): push_fresh steps there, one push a second, so the close lands
    # that many seconds later, at indices accrued until then
    jump = env.oracle.config().max_jump_bps
    for _ in range(3):
        later = env.chain.blocks.head.timestamp + len(steps(env.oracle.price_data(env.eth).price, price, jump))
        if later == ts:
            break
        ts = later
        idx = indices_at(env, env.eth, ts)
        price = price_for_left(pos, is_long, -env.usd(loss_usd), idx, cfg, env.scale)
    return pos, ts, idx, price


# ---------------------------------------------------------------- top-up: equity below the fee


@pytest.mark.parametrize(
    "is_long, fund",
    [(True, "funded"), (False, "funded"), (True, "empty")],
    ids=["long-funded", "short-funded", "long-empty"],
)
def test_liquidate__equity_below_fee__fee_paid_in_full_topped_up_by_insurance_then_pool(
    renv, alice, liquidator, lp, deployer, cfg, risk, is_long, fund
):
    env = renv
    pos = open_usual(env, alice, is_long)
    ts, idx = next_second(env)
    fee = liquidation_fee(SIZE, risk, env.scale)
    price = price_for_left(pos, is_long, fee // 2, idx, cfg, env.scale)
    # a funded fund pays the whole top-up; an empty one pays only the cut it just took
    set_insurance(env, env.usd(1_000) if fund == "funded" else 0, lp, deployer)
    assert push_fresh(env, env.eth, price) == ts
    no_spread(env, price)
    liq = predict_now(env, pos, is_long, price, idx, cfg, risk)
    assert 0 < liq.left < liq.fee == fee and liq.shortfall == 0
    assert liq.from_position == liq.left
    close_fee = position_fee(SIZE, cfg["position_fee_bps"], env.scale)
    assert liq.cut == close_fee * 1_000 // BPS  # the whole remainder went to the fee
    if fund == "funded":
        assert liq.from_insurance == fee - liq.left
        assert liq.pool_delta == pos.collateral - fee - liq.cut + liq.from_insurance
    else:
        assert liq.from_insurance == liq.cut < fee - liq.left  # the pool pays the rest
        assert liq.pool_delta == pos.collateral - fee
    before = snapshot(env, liquidator)

    tx = liquidate(env, alice, is_long, liquidator)

    assert indices_used(env, env.eth) == idx
    expect_liquidation(env, tx, liq, alice, is_long, liquidator, before)


# ---------------------------------------------------------------- liquidation with a shortfall


@pytest.mark.parametrize(
    "is_long, level",
    [(True, "covers_all"), (True, "covers_part"), (False, "covers_part"), (True, "below_fee")],
    ids=["long-covers_all", "long-covers_part", "short-covers_part", "long-below_fee"],
)
def test_liquidate__loss_beyond_collateral__fee_then_shortfall_from_insurance_rest_from_lps(
    renv, alice, liquidator, lp, deployer, cfg, risk, is_long, level
):
    env = renv
    pos, ts, idx, price = beyond_collateral(env, alice, is_long, cfg)
    fee = liquidation_fee(SIZE, risk, env.scale)
    shortfall = -left_of(pos, is_long, price, idx, cfg, env.scale)
    assert shortfall > 0
    fund = {
        "covers_all": fee + shortfall + env.usd(50),
        "covers_part": fee + shortfall // 2,
        "below_fee": fee // 2,
    }[level]
    set_insurance(env, fund, lp, deployer)
    assert push_fresh(env, env.eth, price) == ts
    no_spread(env, price)
    liq = predict_liquidation(pos, is_long, price, idx, cfg, risk, env.scale, fund)
    # nothing of the position's: no cut; the fund tops the fee up first, then covers
    assert (liq.shortfall, liq.cut, liq.from_position) == (shortfall, 0, 0)
    expected = {
        "covers_all": (fee, shortfall, 0),
        "covers_part": (fee, shortfall // 2, shortfall - shortfall // 2),
        "below_fee": (fee // 2, 0, shortfall),  # the pool pays the rest of the fee too
    }[level]
    assert (liq.from_insurance, liq.cover, liq.from_lps) == expected
    assert liq.pool_delta == pos.collateral - fee + liq.from_insurance + liq.cover
    before = snapshot(env, liquidator)

    tx = liquidate(env, alice, is_long, liquidator)

    assert indices_used(env, env.eth) == idx
    expect_liquidation(env, tx, liq, alice, is_long, liquidator, before)
    assert env.vault.insurance_amount() == fund - liq.from_insurance - liq.cover


def test_liquidate__zero_keeper_fee_and_a_shortfall__insurance_still_covers_first(
    renv, alice, liquidator, lp, deployer, cfg
):
    """With liquidation_fee_usd = liquidation_fee_bps = 0 (both within the Configurator's
    bounds) there is no top-up, but the shortfall still goes through the waterfall."""
    env = renv
    pin(env)
    no_fee = {**params.RISK_CONFIG, "liquidation_fee_usd": 0, "liquidation_fee_bps": 0}
    env.configurator.set_risk_config(env.eth, no_fee, sender=deployer)
    risk0 = risk_of(env.configurator, env.eth)
    pos, ts, idx, price = beyond_collateral(env, alice, True, cfg)
    set_insurance(env, env.usd(1_000), lp, deployer)
    assert push_fresh(env, env.eth, price) == ts
    liq = predict_liquidation(pos, True, price, idx, cfg, risk0, env.scale, env.usd(1_000))
    assert liq.fee == 0 and liq.cover == liq.shortfall > 0
    before = snapshot(env, liquidator)

    tx = liquidate(env, alice, True, liquidator)

    expect_liquidation(env, tx, liq, alice, True, liquidator, before)
    assert env.vault.insurance_amount() == env.usd(1_000) - liq.shortfall


# ---------------------------------------------------------------- the trader's own close


@pytest.mark.parametrize(
    "is_long, level",
    [(True, "covers_all"), (False, "covers_part"), (True, "empty")],
    ids=["long-covers_all", "short-covers_part", "long-empty"],
)
def test_decrease_position__full_close_beyond_collateral__insurance_then_lps_pay_the_shortfall(
    renv, alice, lp, deployer, cfg, is_long, level
):
    env, perp = renv, renv.perp
    pos, ts, idx, price = beyond_collateral(env, alice, is_long, cfg)
    shortfall = -left_of(pos, is_long, price, idx, cfg, env.scale)
    fund = {"covers_all": shortfall + env.usd(10), "covers_part": shortfall // 3, "empty": 0}[level]
    set_insurance(env, fund, lp, deployer)
    assert push_fresh(env, env.eth, price) == ts
    no_spread(env, price)
    change = predict_decrease(pos, is_long, 0, SIZE, price, idx, cfg, env.scale)
    assert (change.amount_out, change.bad_debt) == (0, shortfall)
    cover = min(shortfall, fund)
    before = snapshot(env, alice)

    pin(env)
    tx = close_position(env, alice, env.eth, is_long)

    assert tx.return_value == 0
    [update] = tx.decode_logs(perp.PositionUpdate)
    expect_update(update, change, alice, env.eth, is_long)
    [bad] = tx.decode_logs(perp.BadDebt)
    assert bytes(bad.key) == bytes(perp.position_key(alice, env.eth, is_long))
    assert (bad.market, bad.shortfall) == (env.eth, shortfall)
    assert (bad.from_insurance, bad.from_lps) == (cover, shortfall - cover)
    assert list(tx.decode_logs(perp.Liquidation)) == []
    pool, collateral, escrow, insurance = before["buckets"]
    # no cut of a fee the position could not pay; the pool keeps the collateral and the cover
    assert buckets(env.vault) == (
        pool + pos.collateral + cover, collateral - pos.collateral, escrow, insurance - cover
    )
    assert perp.bad_debt_total() == before["bad_debt"] + shortfall - cover
    assert env.token.balanceOf(alice) == before["receiver"]
    assert env.token.balanceOf(env.vault) == before["vault"]
    assert env.vault.is_solvent()


# ---------------------------------------------------------------- self-liquidation


@pytest.mark.parametrize("equity", ["above_fee", "below_fee"])
def test_liquidate__own_position__owner_gets_the_keeper_fee_and_nothing_more(
    renv, alice, lp, deployer, cfg, risk, equity
):
    env = renv
    pos = open_usual(env, alice, True)
    ts, idx = next_second(env)
    fee = liquidation_fee(SIZE, risk, env.scale)
    target = env.usd(300) if equity == "above_fee" else fee // 2
    price = price_for_left(pos, True, target, idx, cfg, env.scale)
    set_insurance(env, env.usd(1_000), lp, deployer)
    assert push_fresh(env, env.eth, price) == ts
    no_spread(env, price)
    with isolated(env.chain):  # what closing instead would have paid
        pin(env)
        close_paid = close_position(env, alice, env.eth, True).return_value
    assert close_paid == left_of(pos, True, price, idx, cfg, env.scale) > 0
    liq = predict_liquidation(pos, True, price, idx, cfg, risk, env.scale, env.usd(1_000))
    before = snapshot(env, alice)

    tx = liquidate(env, alice, True, alice)

    # the fee is credited to the owner in the Vault: her tokens do not move (checked in
    # expect_liquidation), what she can claim grows by exactly the fee
    expect_liquidation(env, tx, liq, alice, True, alice, before)
    claimable = env.vault.claimable(alice) - before["claimable"]
    assert claimable == liq.fee == fee
    if equity == "above_fee":
        assert claimable < close_paid  # the rest of the equity goes to the pool and the fund
        assert liq.pool_delta + liq.insurance_delta == pos.collateral - fee
    else:
        # the fund tops the fee up: the owner's gain over a close is less than the fee
        assert close_paid < claimable and liq.from_insurance == fee - close_paid
    # and claiming pays her that, nothing more
    pin(env)
    assert env.vault.claim(alice, sender=alice).return_value == fee
    assert env.token.balanceOf(alice) - before["receiver"] == fee
    assert env.vault.claimable(alice) == before["claimable"] == 0
    assert env.vault.claimable_amount() == before["claimable_total"]
    assert env.vault.is_solvent()


# ---------------------------------------------------------------- funding beyond collateral


@pytest.mark.parametrize("closer", ["owner", "liquidator"])
def test_funding_beyond_collateral__owner_closes_or_keeper_liquidates__settles_without_underflow(
    renv, alice, bob, liquidator, deployer, cfg, risk, closer
):
    env, perp, vault = renv, renv.perp, renv.vault
    fast = {**cfg, "funding_factor": MAX_RATE, "max_funding_rate": MAX_RATE}
    pin(env)
    env.configurator.set_market_config(env.eth, fast, sender=deployer)
    long_pos = open_at(env, alice, True, env.usd(COLLATERAL_USD), SIZE)
    pin(env)
    open_position(env, bob, env.eth, False, env.usd(200), 1_000 * WAD)
    short_pos = Position.of(perp.get_position(bob, env.eth, False))
    rates = env.reader.rates(env.eth)
    pay = ceil_div(MAX_RATE * (SIZE - 1_000 * WAD), SIZE + 1_000 * WAD)
    assert rates.funding_rate_long_per_second == -pay
    assert rates.funding_rate_short_per_second == pay * 10  # capped at 10x the pay rate
    # three hours without a push: longs pay ~1 %/h of $100k, more than the $2,100 collateral;
    # the first push after the outage turns the spread on
    t1 = env.chain.blocks.head.timestamp + 3 * 3_600
    pin(env, t1)
    env.oracle.set_prices([env.eth], [BASE], t1, sender=env.keeper)
    spread = env.oracle.config().spread_bps
    close_long, close_short = spread_price(BASE, spread, False), spread_price(BASE, spread, True)
    assert perp.close_price(env.eth, True) == close_long
    v = perp.position_values(alice, env.eth, True, close_long)
    assert -v.funding > long_pos.collateral * env.scale
    insurance = vault.insurance_amount()
    receiver = alice if closer == "owner" else liquidator
    before = snapshot(env, receiver)

    pin(env)
    if closer == "owner":
        tx = close_position(env, alice, env.eth, True)
        idx = indices_used(env, env.eth)
        change = predict_decrease(long_pos, True, 0, SIZE, close_long, idx, fast, env.scale)
        assert -change.funding > long_pos.collateral and change.amount_out == 0
        [update] = tx.decode_logs(perp.PositionUpdate)
        expect_update(update, change, alice, env.eth, True)
        cover = min(change.bad_debt, insurance)
        [bad] = tx.decode_logs(perp.BadDebt)
        assert (bad.shortfall, bad.from_insurance) == (change.bad_debt, cover)
        assert bad.from_lps == change.bad_debt - cover
        pool, collateral, escrow, fund = before["buckets"]
        coll = long_pos.collateral
        assert buckets(vault) == (pool + coll + cover, collateral - coll, escrow, fund - cover)
        assert perp.bad_debt_total() == before["bad_debt"] + change.bad_debt - cover
    else:
        tx = liquidate(env, alice, True, liquidator)
        idx = indices_used(env, env.eth)
        liq = predict_liquidation(long_pos, True, close_long, idx, fast, risk, env.scale, insurance)
        assert liq.remaining == v.remaining and liq.shortfall > 0
        expect_liquidation(env, tx, liq, alice, True, liquidator, before)

    # the short collects its funding at the pool's expense, and everything still adds up
    idx = indices_used(env, env.eth)
    pin(env)
    tx = close_position(env, bob, env.eth, False)
    size = short_pos.size_usd
    change = predict_decrease(short_pos, False, 0, size, close_short, idx, fast, env.scale)
    assert change.funding > 0 and tx.return_value == change.amount_out
    assert vault.collateral_amount() == 0
    assert vault.reserved_amount() == env.reader.total_reserved_usd() == 0
    assert vault.is_solvent()


# ---------------------------------------------------------------- liquidate_batch


def test_liquidate_batch__a_mix__liquidates_exactly_the_unhealthy_and_skips_the_rest(
    renv, alice, bob, carol, liquidator, cfg, risk
):
    env, perp = renv, renv.perp
    entry = ENTRY[True]
    a = open_at(env, alice, True, env.usd(COLLATERAL_USD), SIZE, entry)
    pin(env)
    open_position(env, carol, env.eth, True, env.usd(1_100), 50_000 * WAD + ODD)  # ~48x
    pin(env)
    open_position(env, bob, env.eth, True, env.usd(20_000), SIZE)  # 5x: stays healthy
    pin(env)
    open_position(env, bob, env.eth, False, env.usd(1_000), 10_000 * WAD)
    pin(env)
    close_position(env, bob, env.eth, False)  # already closed
    c = Position.of(perp.get_position(carol, env.eth, True))
    b = Position.of(perp.get_position(bob, env.eth, True))
    ts, idx = next_second(env)
    price = entry * (BPS - 170) // BPS
    assert push_fresh(env, env.eth, price) == ts
    no_spread(env, price)
    assert not healthy(a, True, price, idx, cfg, risk, env.scale)
    assert not healthy(c, True, price, idx, cfg, risk, env.scale)
    assert healthy(b, True, price, idx, cfg, risk, env.scale)
    insurance = env.vault.insurance_amount()
    liq_a = predict_liquidation(a, True, price, idx, cfg, risk, env.scale, insurance)
    after_a = insurance + liq_a.insurance_delta
    liq_c = predict_liquidation(c, True, price, idx, cfg, risk, env.scale, after_a)
    refs = [
        (alice, env.eth, True),
        (bob, env.eth, True),  # healthy
        (liquidator, env.eth, True),  # never opened
        (bob, env.eth, False),  # closed
        (carol, env.eth, True),
        (alice, env.eth, True),  # liquidated a moment ago
        (alice, env.btc, True),  # another market, no position
    ]
    before = snapshot(env, liquidator)

    pin(env)
    batch = [(x.address, m, s) for x, m, s in refs]
    tx = perp.liquidate_batch(batch, liquidator, sender=liquidator)

    assert tx.return_value == 2
    assert indices_used(env, env.eth) == idx
    events = list(tx.decode_logs(perp.Liquidation))
    assert [e.account for e in events] == [alice.address, carol.address]
    for e, liq in zip(events, (liq_a, liq_c)):
        assert (e.price, e.remaining, e.maintenance) == (liq.price, liq.remaining, liq.maintenance)
        assert (e.fee, e.fee_from_insurance) == (liq.fee, liq.from_insurance)
        assert e.insurance_cut == liq.cut
    assert list(tx.decode_logs(perp.BadDebt)) == []
    pool, collateral, escrow, fund = before["buckets"]
    assert buckets(env.vault) == (
        pool + liq_a.pool_delta + liq_c.pool_delta,
        collateral - a.collateral - c.collateral,
        escrow,
        fund + liq_a.insurance_delta + liq_c.insurance_delta,
    )
    # both fees are credited to the receiver in the Vault, one settlement each; no token moves
    assert env.token.balanceOf(liquidator) == before["receiver"]
    assert env.token.balanceOf(env.vault) == before["vault"]
    assert env.vault.claimable(liquidator) == before["claimable"] + liq_a.fee + liq_c.fee
    assert env.vault.claimable_amount() == before["claimable_total"] + liq_a.fee + liq_c.fee
    assert [s.credited for s in [decode_settled(x) for x in tx.decode_logs(env.vault.Settled)]] == [liq_a.fee, liq_c.fee]
    assert Position.of(perp.get_position(bob, env.eth, True)) == b
    for account in (alice, carol):
        assert perp.get_position(account, env.eth, True).size_usd == 0
    assert perp.open_interest(env.eth, True) == (b.size_usd, b.size_tokens)
    assert env.vault.reserved_amount() == reserve_tokens(env, b.size_usd)
    assert env.vault.is_solvent()


def test_liquidate_batch__zero_receiver__refused(renv, alice, liquidator, cfg, risk):
    env = renv
    underwater(env, alice, True, cfg, risk)
    assert_refused(
        env, (alice, liquidator), "perp: zero receiver",
        env.perp.liquidate_batch, [(alice.address, env.eth, True)], ZERO_ADDRESS, sender=liquidator,
    )


def test_liquidate_batch__stale_price__reverts_the_whole_batch(
    renv, alice, bob, carol, liquidator, cfg, risk
):
    env = renv
    _, _, ts = underwater(env, alice, True, cfg, risk)
    pin(env)
    open_position(env, carol, env.eth, True, env.usd(1_100), 50_000 * WAD + ODD)
    pin(env, ts + env.oracle.config().max_price_age + 1)
    refs = [(x.address, env.eth, True) for x in (bob, alice, carol)]  # bob has none
    assert_refused(
        env, (alice, bob, carol, liquidator), "oracle: stale price",
        env.perp.liquidate_batch, refs, liquidator, sender=liquidator,
    )


def test_liquidate_batch__only_absent_positions_under_a_stale_price__returns_zero(
    renv, alice, bob, liquidator
):
    """A position that is gone is skipped before the price is read, so a batch of them does
    not need a fresh price (the NatSpec's "a stale price still reverts the batch" applies
    once a position is there to value)."""
    env = renv
    pin(env, env.oracle.price_timestamp(env.eth) + env.oracle.config().max_price_age + 1)
    refs = [(alice.address, env.eth, True), (bob.address, env.eth, False)]
    tx = env.perp.liquidate_batch(refs, liquidator, sender=liquidator)
    assert env.oracle.is_stale(env.eth)  # at the batch's block
    assert tx.return_value == 0
    assert list(tx.decode_logs(env.perp.Liquidation)) == []
