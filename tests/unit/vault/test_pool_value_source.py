"""Share pricing through a pool value source (TestPoolValue standing in for Perp).

TestPoolValue reports the Vault's recorded pool amount in WAD plus a signed offset, one for
maximize=True and one for maximize=False, and reads `pool_amount` from inside the Vault's
deposit/redeem, as Perp does. Deposits must price with the max value (fewer shares),
redeems with the min value (less paid); every expected number is computed here.
"""

import ape
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from chain_isolation import isolated


@pytest.fixture
def priced(vault, pool_value_source, deployer, lp, unit, pass_cooldown):
    """lp in the pool (cooldown over), TestPoolValue set as the source, offsets zero."""
    vault.deposit(10_000 * unit + unit // 7, 0, lp, sender=lp)
    vault.set_pool_value_source(pool_value_source, sender=deployer)
    pass_cooldown()
    return vault


def pool_wad(vault):
    return vault.pool_amount() * vault.token_scale()


def test_pool_value__no_source__is_pool_amount_in_wad(vault, lp, unit, scale):
    vault.deposit(1_234 * unit + 5, 0, lp, sender=lp)
    assert vault.pool_value_source() == "0x0000000000000000000000000000000000000000"
    assert vault.pool_value(True) == vault.pool_value(False) == vault.pool_amount() * scale


def test_pool_value__source_set__reports_source_max_and_min(priced, pool_value_source, deployer):
    vault = priced
    pool_value_source.set_offsets(7 * 10**18 + 3, -(2 * 10**18 + 1), sender=deployer)
    base = pool_wad(vault)
    assert vault.pool_value(True) == base + 7 * 10**18 + 3
    assert vault.pool_value(False) == base - 2 * 10**18 - 1


@pytest.mark.parametrize("direction", [+1, -1], ids=["above", "below"])
def test_deposit__priced_at_max_value__shares_computed_from_it(
    priced, pool_value_source, other_lp, deployer, unit, scale, model, direction
):
    vault = priced
    base = pool_wad(vault)
    offset_max = direction * base * 5 // 100 + direction  # 5 % and a bit, off the round
    offset_min = -base * 3 // 100  # a different min value, which deposits must not use
    pool_value_source.set_offsets(offset_max, offset_min, sender=deployer)
    supply = vault.totalSupply()
    amount = 2_345 * unit + unit // 3
    q = model.deposit(amount, model.MINT_FEE_BPS, scale, supply, base + offset_max)
    at_pool_amount = model.deposit(amount, model.MINT_FEE_BPS, scale, supply, base)
    if direction > 0:
        assert q.shares < at_pool_amount.shares  # value above the pool amount: fewer shares
    else:
        assert q.shares > at_pool_amount.shares

    tx = vault.deposit(amount, 0, other_lp, sender=other_lp)

    assert tx.return_value == q.shares
    assert vault.balanceOf(other_lp) == q.shares
    assert vault.pool_amount() * scale == base + amount * scale  # the value never is booked
    [log] = tx.decode_logs(vault.Deposit)
    assert (log.amount, log.fee, log.shares) == (amount, q.fee, q.shares)


@pytest.mark.parametrize("direction", [+1, -1], ids=["above", "below"])
def test_redeem__priced_at_min_value__amount_computed_from_it(
    priced, pool_value_source, token, lp, deployer, scale, model, direction
):
    vault = priced
    base = pool_wad(vault)
    offset_min = direction * (base * 4 // 100 + 1)
    offset_max = base * 9 // 100  # a different max value, which redeems must not use
    pool_value_source.set_offsets(offset_max, offset_min, sender=deployer)
    shares = vault.balanceOf(lp) // 3
    supply = vault.totalSupply()
    q = model.redeem(shares, model.BURN_FEE_BPS, scale, supply, base + offset_min)
    at_pool_amount = model.redeem(shares, model.BURN_FEE_BPS, scale, supply, base)
    if direction > 0:
        assert q.amount > at_pool_amount.amount
    else:
        assert q.amount < at_pool_amount.amount
    lp_tokens, pool = token.balanceOf(lp), vault.pool_amount()

    tx = vault.redeem(shares, 0, lp, sender=lp)

    assert tx.return_value == q.amount
    assert token.balanceOf(lp) == lp_tokens + q.amount
    assert vault.pool_amount() == pool - q.amount
    [log] = tx.decode_logs(vault.Redeem)
    assert (log.shares, log.amount, log.fee) == (shares, q.amount, q.fee)


def test_share_price__from_source_values(priced, pool_value_source, deployer, model):
    vault = priced
    base = pool_wad(vault)
    pool_value_source.set_offsets(base // 10, -base // 20, sender=deployer)
    supply = vault.totalSupply()
    assert vault.share_price(True) == (base + base // 10) * model.WAD // supply
    assert vault.share_price(False) == (base - base // 20) * model.WAD // supply


def test_share_price__before_first_deposit__is_one_dollar(vault, model):
    assert vault.share_price(True) == vault.share_price(False) == model.WAD


def test_first_deposit__ignores_source__one_share_per_wad(
    vault, pool_value_source, deployer, lp, unit, model
):
    """With no shares yet there is nothing to price: the first deposit mints at $1."""
    vault.set_pool_value_source(pool_value_source, sender=deployer)
    pool_value_source.set_offsets(10**24, -(10**24), sender=deployer)
    amount = 50 * unit + 1
    q = model.deposit(amount, model.MINT_FEE_BPS, vault.token_scale(), 0, 0)
    assert vault.deposit(amount, 0, lp, sender=lp).return_value == q.shares
    assert q.shares == q.net_wad - model.DEAD_SHARES


def test_set_pool_value_source__back_to_empty__prices_at_pool_amount(
    priced, pool_value_source, deployer, other_lp, unit, model
):
    vault = priced
    pool_value_source.set_offsets(pool_wad(vault), 0, sender=deployer)  # double value
    vault.set_pool_value_source("0x0000000000000000000000000000000000000000", sender=deployer)
    assert vault.pool_value(True) == pool_wad(vault)
    amount = 100 * unit
    q = model.quote_deposit(vault, amount)
    assert vault.deposit(amount, 0, other_lp, sender=other_lp).return_value == q.shares


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("past_zero", [0, 1], ids=["exactly_zero", "clamped_below_zero"])
def test_deposit__pool_value_zero__reverts(
    priced, pool_value_source, deployer, other_lp, unit, snapshot, past_zero
):
    vault = priced
    pool_value_source.set_offsets(-pool_wad(vault) - past_zero, 0, sender=deployer)
    assert vault.pool_value(True) == 0
    before = snapshot()
    with ape.reverts("vault: pool value zero"):
        vault.deposit(100 * unit, 0, other_lp, sender=other_lp)
    assert snapshot() == before


def test_redeem__pool_value_zero__reverts_zero_amount(
    priced, pool_value_source, deployer, lp, snapshot
):
    """Traders' capped profit ate the whole pool: shares are worth nothing, nothing is paid."""
    vault = priced
    pool_value_source.set_offsets(0, -pool_wad(vault), sender=deployer)
    assert vault.pool_value(False) == 0
    before = snapshot()
    with ape.reverts("vault: zero amount"):
        vault.redeem(vault.balanceOf(lp), 0, lp, sender=lp)
    assert snapshot() == before


def test_redeem__value_above_pool_amount__cannot_pay_more_than_pool(
    priced, pool_value_source, deployer, lp, scale, model, snapshot
):
    """Pending fees count in the value but are not in the Vault yet: a payout above the
    recorded pool amount is refused with the reserved reason."""
    vault = priced
    base = pool_wad(vault)
    pool_value_source.set_offsets(0, base // 10, sender=deployer)
    shares = vault.balanceOf(lp)
    q = model.redeem(shares, model.BURN_FEE_BPS, scale, vault.totalSupply(), base + base // 10)
    assert q.amount > vault.pool_amount()
    before = snapshot()
    with ape.reverts("vault: reserved"):
        vault.redeem(shares, 0, lp, sender=lp)
    assert snapshot() == before


def test_deposit__value_too_high_for_a_share__reverts_zero_shares(
    priced, pool_value_source, deployer, other_lp, scale, model, snapshot
):
    vault = priced
    amount = 1_000  # token units
    net_wad = (amount - model.fee(amount, model.MINT_FEE_BPS)) * scale
    # a max value at which the deposit is worth less than one share-wei
    offset = net_wad * vault.totalSupply() + 1 - pool_wad(vault)
    pool_value_source.set_offsets(offset, 0, sender=deployer)
    assert model.quote_deposit(vault, amount, value=vault.pool_value(True)).shares == 0
    before = snapshot()
    with ape.reverts("vault: zero shares"):
        vault.deposit(amount, 0, other_lp, sender=other_lp)
    assert snapshot() == before


# ------------------------------------------------------------------ property


@settings(max_examples=10, deadline=None)
@given(
    first=st.integers(2, 1_000_000),  # whole dollars: $1 less the mint fee is under the first-deposit minimum
    second=st.integers(1, 10**13),
    max_bps=st.integers(-9_000, 20_000),
    min_bps=st.integers(-9_000, 20_000),
    fraction_bps=st.integers(1, 10_000),
)
def test_property__deposit_and_redeem_match_the_formulas(
    vault, pool_value_source, deployer, lp, other_lp, chain, unit, scale, model,
    first, second, max_bps, min_bps, fraction_bps,
):
    with isolated(chain):
        vault.deposit(first * unit, 0, lp, sender=lp)
        vault.set_pool_value_source(pool_value_source, sender=deployer)
        base = pool_wad(vault)
        offset_max, offset_min = base * max_bps // 10_000, base * min_bps // 10_000
        pool_value_source.set_offsets(offset_max, offset_min, sender=deployer)

        amount = second * unit // 10**6 + second % 7  # token units, odd
        supply = vault.totalSupply()
        dq = model.deposit(amount, model.MINT_FEE_BPS, scale, supply, base + offset_max)
        if dq.shares == 0:
            event("deposit mints zero shares")
            with ape.reverts("vault: zero shares"):
                vault.deposit(amount, 0, other_lp, sender=other_lp)
            return
        assert vault.deposit(amount, 0, other_lp, sender=other_lp).return_value == dq.shares

        chain.mine(deltatime=vault.cooldown())
        shares = max(1, vault.balanceOf(lp) * fraction_bps // 10_000)
        value = pool_wad(vault) + offset_min  # the offsets are fixed WAD amounts
        rq = model.redeem(shares, model.BURN_FEE_BPS, scale, vault.totalSupply(), value)
        if rq.amount == 0:
            event("redeem pays zero")
            with ape.reverts("vault: zero amount"):
                vault.redeem(shares, 0, lp, sender=lp)
        elif rq.amount > vault.pool_amount():
            event("redeem above pool amount")
            with ape.reverts("vault: reserved"):
                vault.redeem(shares, 0, lp, sender=lp)
        else:
            event("redeem paid")
            assert vault.redeem(shares, 0, lp, sender=lp).return_value == rq.amount


# ------------------------------------------------------------------ the share-price check
#
# TestPoolValue counts a trader profit capped at `cap_bps` of the pool amount, as Perp's pool
# value caps net trader profit at max_pnl_factor_bps: while the cap binds, the counted
# liability moves with the pool amount, and the Vault's check after its writes refuses a
# deposit that would lower the share price and a redeem that would raise it beyond its fee.


def capped_value(pool_wad_: int, profit: int, cap_bps: int) -> int:
    """TestPoolValue's value with zero offsets (its integer arithmetic)."""
    return max(pool_wad_ - min(profit, pool_wad_ * cap_bps // 10_000), 0)


@pytest.mark.parametrize("cap_bps", [100, 9_000])
def test_deposit__pnl_cap_binds__refused_deposit_would_dilute(
    priced, pool_value_source, deployer, other_lp, unit, scale, model, snapshot, cap_bps
):
    """Profit twice the cap: the deposit would add cap_bps of itself to the counted
    liability, so the share price would fall; refused and nothing moves."""
    vault = priced
    base = pool_wad(vault)
    profit = 2 * base * cap_bps // 10_000
    pool_value_source.set_capped_profit(profit, cap_bps, sender=deployer)
    amount = 5_000 * unit + 3
    value = capped_value(base, profit, cap_bps)
    supply = vault.totalSupply()
    q = model.deposit(amount, model.MINT_FEE_BPS, scale, supply, value)
    after = capped_value(base + amount * scale, profit, cap_bps)
    assert after * supply < value * (supply + q.shares)  # the price would fall
    before = snapshot()
    with ape.reverts("vault: deposit would dilute"):
        vault.deposit(amount, 0, other_lp, sender=other_lp)
    assert snapshot() == before


@pytest.mark.parametrize("cap_bps", [100, 9_000])
def test_redeem__pnl_cap_binds__refused_redeem_beyond_its_share(
    priced, pool_value_source, deployer, lp, scale, model, snapshot, cap_bps
):
    """Profit twice the cap: the redeemer would be paid a share of a value that ignores
    the profit above the cap, raising the remaining LPs' price by far more than its fee."""
    vault = priced
    base = pool_wad(vault)
    profit = 2 * base * cap_bps // 10_000
    pool_value_source.set_capped_profit(profit, cap_bps, sender=deployer)
    shares = vault.balanceOf(lp) // 2
    value = capped_value(base, profit, cap_bps)
    supply = vault.totalSupply()
    q = model.redeem(shares, model.BURN_FEE_BPS, scale, supply, value)
    after = capped_value(base - q.amount * scale, profit, cap_bps)
    assert after * supply > value * (supply - shares) + supply * (q.fee + 1) * scale
    before = snapshot()
    with ape.reverts("vault: redeem beyond its share"):
        vault.redeem(shares, 0, lp, sender=lp)
    assert snapshot() == before


def test_deposit_and_redeem__profit_under_the_cap__pass_at_the_formulas(
    priced, pool_value_source, deployer, lp, other_lp, unit, scale, model, pass_cooldown
):
    """A profit under the cap after the flow: the value is linear in the pool amount and
    both flows go through at the documented formulas (the check is exact there)."""
    vault = priced
    base = pool_wad(vault)
    profit = base * 8_000 // 10_000  # the cap (90 %) does not bind, before or after
    pool_value_source.set_capped_profit(profit, 9_000, sender=deployer)
    amount = 1_000 * unit + 1
    supply = vault.totalSupply()
    value = base - profit
    q = model.deposit(amount, model.MINT_FEE_BPS, scale, supply, value)
    assert vault.deposit(amount, 0, other_lp, sender=other_lp).return_value == q.shares
    assert vault.pool_value(True) * supply >= value * vault.totalSupply()

    pass_cooldown()
    shares = vault.balanceOf(lp) // 5
    supply, value = vault.totalSupply(), vault.pool_value(False)
    rq = model.redeem(shares, model.BURN_FEE_BPS, scale, supply, value)
    assert vault.redeem(shares, 0, lp, sender=lp).return_value == rq.amount
    assert vault.pool_value(False) * supply <= value * vault.totalSupply() + supply * (rq.fee + 1) * scale


@settings(max_examples=12, deadline=None)
@given(
    profit_bps=st.integers(0, 30_000),
    cap_bps=st.integers(0, 10_000),
    amount_bps=st.integers(1, 30_000),
    fraction_bps=st.integers(1, 10_000),
)
def test_property__pnl_cap__flows_refused_exactly_when_they_move_the_price(
    vault, pool_value_source, deployer, lp, other_lp, chain, unit, scale, model,
    profit_bps, cap_bps, amount_bps, fraction_bps,
):
    """Any profit and cap: a deposit is refused exactly when the formula says the price
    would fall, a redeem exactly when it would rise beyond its fee and rounding; every
    flow that passes keeps the share-price invariant."""
    with isolated(chain):
        vault.deposit(100_000 * unit, 0, lp, sender=lp)
        vault.set_pool_value_source(pool_value_source, sender=deployer)
        base = pool_wad(vault)
        profit = base * profit_bps // 10_000
        pool_value_source.set_offsets(0, 0, sender=deployer)
        pool_value_source.set_capped_profit(profit, cap_bps, sender=deployer)

        amount = 100_000 * unit * amount_bps // 10_000 + 1
        supply, value = vault.totalSupply(), capped_value(base, profit, cap_bps)
        dq = model.deposit(amount, model.MINT_FEE_BPS, scale, supply, value) if value else None
        if value == 0 or dq.shares == 0:
            event("deposit refused before the check")
        else:
            after = capped_value(base + amount * scale, profit, cap_bps)
            if after * supply < value * (supply + dq.shares):
                event("deposit refused: pnl cap binds")
                with ape.reverts("vault: deposit would dilute"):
                    vault.deposit(amount, 0, other_lp, sender=other_lp)
            else:
                event("deposit passed")
                assert vault.deposit(amount, 0, other_lp, sender=other_lp).return_value == dq.shares
                assert vault.pool_value(True) * supply >= value * vault.totalSupply()

        chain.mine(deltatime=vault.cooldown())
        shares = max(1, vault.balanceOf(lp) * fraction_bps // 10_000)
        pool = pool_wad(vault)
        supply, value = vault.totalSupply(), capped_value(pool, profit, cap_bps)
        rq = model.redeem(shares, model.BURN_FEE_BPS, scale, supply, value)
        if rq.amount == 0 or rq.amount > vault.pool_amount():
            event("redeem refused before the check")
            return
        after = capped_value(pool - rq.amount * scale, profit, cap_bps)
        if after * supply > value * (supply - shares) + supply * (rq.fee + 1) * scale:
            event("redeem refused: pnl cap binds")
            with ape.reverts("vault: redeem beyond its share"):
                vault.redeem(shares, 0, lp, sender=lp)
        else:
            event("redeem passed")
            assert vault.redeem(shares, 0, lp, sender=lp).return_value == rq.amount
