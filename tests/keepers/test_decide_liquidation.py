"""The liquidator's pure decisions (keepers/decide/liquidation.py), without a chain: the
health function restated from Perp against the worked examples of docs/risk.md and
boundaries derived by hand, and the liquidation-price index against brute force."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from keepers.decide.liquidation import (
    WAD,
    Indices,
    LiquidationIndex,
    MarketParams,
    Position,
    SideIndex,
    beyond,
    brute_force,
    is_liquidatable,
    liquidation_price,
    maintenance,
    values,
)

SCALE = 10**12  # WAD per unit of the 6-decimal test token
DEFAULTS = MarketParams(  # perpool.params MARKET_CONFIG and RISK_CONFIG
    position_fee_bps=10,
    maintenance_margin_bps=50,
    min_maintenance_usd=5 * WAD,
    tier_threshold_usd=(1_000_000 * WAD, 5_000_000 * WAD, 20_000_000 * WAD),
    tier_maintenance_bps=(100, 150, 250),
    token_scale=SCALE,
)
ZERO = Indices(0, 0, 0)
ETH = 1


def usd(dollars: int) -> int:
    return dollars * WAD


# docs/risk.md "Liquidation": a long opens $10,000 with $500 at $3,000; the $10 fee leaves
# $490 of collateral and 3.333333333333333333 ETH (10,000e36 / 3,000e18, rounded down).
RISK_DOC_LONG = Position("0x" + "11" * 20, ETH, True, usd(10_000), 3_333_333_333_333_333_333, 490 * 10**6, 0, 0)
# docs/perp.md worked example: a short opens $5,000 with $500 at $3,000: $5 fee, $495 of
# collateral, 1.666666666666666667 ETH (rounded up).
PERP_DOC_SHORT = Position("0x" + "22" * 20, ETH, False, usd(5_000), 1_666_666_666_666_666_667, 495 * 10**6, 0, 0)


# ---------------------------------------------------------------- the health function


def test_values__risk_doc_liquidation_example__remaining_46_67_below_maintenance_50():
    v = values(RISK_DOC_LONG, DEFAULTS, ZERO, usd(2_870))
    # floor(3.333333333333333333 x 2,870) - 10,000 = -433.333333333333334290
    assert v.pnl == -433_333_333_333_333_334_290
    assert v.close_fee == usd(10) and v.borrowing_fee == 0 and v.funding == 0
    assert v.maintenance == usd(50)  # 0.5 % of $10,000 (above the $5 floor)
    assert v.remaining == usd(490) + v.pnl - usd(10) == 46_666_666_666_666_665_710
    assert is_liquidatable(RISK_DOC_LONG, DEFAULTS, ZERO, usd(2_870))
    assert not is_liquidatable(RISK_DOC_LONG, DEFAULTS, ZERO, usd(3_000))


def test_maintenance__risk_doc_tiers__each_threshold_and_the_floor():
    assert maintenance(DEFAULTS, usd(999_999)) == 4_999_995 * 10**15  # 0.5 %
    assert maintenance(DEFAULTS, usd(1_000_000)) == usd(10_000)  # 1 % from the first threshold
    assert maintenance(DEFAULTS, usd(5_000_000)) == usd(75_000)  # 1.5 %
    assert maintenance(DEFAULTS, usd(20_000_000)) == usd(500_000)  # 2.5 %
    assert maintenance(DEFAULTS, usd(100)) == usd(5)  # the floor
    assert maintenance(DEFAULTS, usd(1_000_000) - 1) == (usd(1_000_000) - 1) * 50 // 10_000 + 1  # rounded up


def test_maintenance__table_ended_by_zero__later_tiers_ignored():
    params = MarketParams(10, 50, usd(5), (usd(1_000), 0, usd(2_000)), (100, 0, 900), SCALE)
    assert maintenance(params, usd(5_000)) == usd(50)  # 1 %, the zero ends the table


def test_liquidation_price__long_exact_boundary__hand_derived():
    # fixed = 490 - 10 (close fee) - 50 (maintenance) = $430, N = 10,000 - 430 = $9,570.
    # T x $2,871 = 957 x (1e19 - 1) x 1e18 = 9,570e36 - 957e18: short of N x 1e18 by 957e18,
    # i.e. 287.1 wei of price: p_liq = $2,871 + 288 wei.
    p_liq = liquidation_price(RISK_DOC_LONG, DEFAULTS, ZERO)
    assert p_liq == 2_871_000_000_000_000_000_288
    assert is_liquidatable(RISK_DOC_LONG, DEFAULTS, ZERO, p_liq - 1)
    assert not is_liquidatable(RISK_DOC_LONG, DEFAULTS, ZERO, p_liq)
    # at $2,871 itself: remaining = 490 + (9,569.999999999999999043 - 10,000) - 10 < 50
    assert values(RISK_DOC_LONG, DEFAULTS, ZERO, usd(2_871)).remaining == usd(50) - 957
    assert is_liquidatable(RISK_DOC_LONG, DEFAULTS, ZERO, usd(2_871))


def test_liquidation_price__short_exact_boundary__hand_derived():
    # fixed = 495 - 5 - 25 = $465, N = 5,000 + 465 = $5,465. T = (5e18 + 1) / 3, so
    # T x $3,279 = 1,093 (5e18 + 1) 1e18 = 5,465e36 + 1,093e18: over N x 1e18 by 1,093e18,
    # i.e. 655.8 wei of price: p_liq = $3,279 - 656 wei.
    p_liq = liquidation_price(PERP_DOC_SHORT, DEFAULTS, ZERO)
    assert p_liq == 3_278_999_999_999_999_999_344
    assert not is_liquidatable(PERP_DOC_SHORT, DEFAULTS, ZERO, p_liq)
    assert is_liquidatable(PERP_DOC_SHORT, DEFAULTS, ZERO, p_liq + 1)
    assert values(PERP_DOC_SHORT, DEFAULTS, ZERO, p_liq).remaining - usd(25) == 0  # ceil(T p) = N exactly
    assert values(PERP_DOC_SHORT, DEFAULTS, ZERO, p_liq + 1).remaining == usd(25) - 2


def test_values__pending_fees__rounded_against_the_trader():
    # $10,000 long, 1 wei of borrow index per USD and funding paid of 1 wei per USD:
    # borrowing ceil(1e22 x 1 / 1e18) = 10,000 wei, funding floor(-1e22 / 1e18) = -10,000.
    pos = Position("0x" + "33" * 20, ETH, True, usd(10_000), 3_333_333_333_333_333_333, 490 * 10**6, 5, 7)
    v = values(pos, DEFAULTS, Indices(borrow=6, funding_long=6, funding_short=0), usd(3_000))
    assert v.borrowing_fee == 10_000 and v.funding == -10_000
    # a fraction of a wei rounds up when paid, down when received
    small = Position("0x" + "44" * 20, ETH, False, 3 * 10**17, 10**14, 10**6, 0, 0)
    v = values(small, DEFAULTS, Indices(borrow=1, funding_long=0, funding_short=1), usd(3_000))
    assert v.borrowing_fee == 1 and v.funding == 0
    v = values(small, DEFAULTS, Indices(borrow=0, funding_long=0, funding_short=-1), usd(3_000))
    assert v.funding == -1


def test_liquidation_price__long_without_one__zero_and_never_liquidatable():
    # a 1x long with its whole size as collateral has no liquidation price
    pos = Position("0x" + "55" * 20, ETH, True, usd(1_000), 10**18, 2_000 * 10**6, 0, 0)
    assert liquidation_price(pos, DEFAULTS, ZERO) == 0
    assert not is_liquidatable(pos, DEFAULTS, ZERO, 1)


def test_liquidation_price__short_under_water_at_any_price__zero_and_always_liquidatable():
    # no collateral and $2,000 of borrowing due on a $1,000 short: N = 1,000 - 2,000 - 1 - 5 < 0
    pos = Position("0x" + "66" * 20, ETH, False, usd(1_000), 10**18, 0, 0, 0)
    idx = Indices(borrow=2 * WAD, funding_long=0, funding_short=0)
    assert liquidation_price(pos, DEFAULTS, idx) == 0
    assert is_liquidatable(pos, DEFAULTS, idx, 1)
    assert liquidation_price(pos, DEFAULTS, ZERO) == usd(1_000) - usd(6)  # N = $994 at 1 token


def test_params_from_configs__abi_field_order():
    config = (500_000, 10, usd(10), usd(50_000_000), 10_000, 1, 2, 3, 50, usd(5))
    risk = ([usd(1_000_000), usd(5_000_000), usd(20_000_000)], [100, 150, 250], usd(2), 5, 1_000, 9_000, 7_000, 5_000)
    assert MarketParams.from_configs(config, risk, SCALE) == DEFAULTS


# ---------------------------------------------------------------- the index


def test_side_index__upsert_replace_remove__sorted_by_liquidation_price():
    side = SideIndex(ETH, True, DEFAULTS, ZERO)
    side.upsert(RISK_DOC_LONG)
    assert side.liquidation_price(RISK_DOC_LONG.key) == 2_871_000_000_000_000_000_288
    assert side.candidates(usd(2_871), ZERO) == [RISK_DOC_LONG.key]
    assert side.candidates(2_871_000_000_000_000_000_288, ZERO) == []
    topped_up = Position(*[getattr(RISK_DOC_LONG, f) for f in ("account", "market", "is_long", "size_usd", "size_tokens")],
                         1_000 * 10**6, 0, 0)
    side.upsert(topped_up)
    assert len(side) == 1 and side.candidates(usd(2_871), ZERO) == []
    side.upsert(Position(RISK_DOC_LONG.account, ETH, True, 0, 0, 0, 0, 0))  # size 0: gone
    assert len(side) == 0 and RISK_DOC_LONG.key not in side


def test_side_index__indices_moved__drift_widens_and_rebuild_narrows():
    side = SideIndex(ETH, True, DEFAULTS, ZERO)
    side.upsert(RISK_DOC_LONG)
    later = Indices(borrow=10**14, funding_long=-10**14, funding_short=10**14)  # fees accrued
    assert side.drift(ZERO) == 0 and side.drift(later) > 0
    # the drift bound: max entry (ceil $3,000.0000000000000003) x 2e14 / 1e18 + 2e18 / T + 1
    entry = -(-usd(10_000) * WAD // RISK_DOC_LONG.size_tokens)
    assert side.drift(later) == -(-entry * 2 * 10**14 // WAD) + 1 + 1
    p = usd(2_871) + 500  # healthy at the reference indices, not after $2 of fees
    assert side.liquidatable(p, ZERO) == []
    assert side.liquidatable(p, later) == [RISK_DOC_LONG]
    assert not side.needs_rebuild(p, later)  # $0.6 of drift is 2 bps of the price... below 10 bps
    side.rebuild(later)
    assert side.drift(later) == 0 and side.candidates(p, later) == [RISK_DOC_LONG.key]


def test_liquidation_index__per_market_side():
    index = LiquidationIndex()
    index.set_market(ETH, DEFAULTS, ZERO)
    index.upsert(RISK_DOC_LONG)
    index.upsert(PERP_DOC_SHORT)
    assert len(index) == 2
    assert index.side(ETH, True).candidates(usd(2_800), ZERO) == [RISK_DOC_LONG.key]
    assert index.side(ETH, False).candidates(usd(2_800), ZERO) == []
    assert index.side(ETH, False).candidates(usd(3_300), ZERO) == [PERP_DOC_SHORT.key]
    index.set_market(ETH, MarketParams(10, 5_000, usd(5), (), (), SCALE), ZERO)  # 50 % maintenance
    assert index.side(ETH, False).candidates(usd(3_000), ZERO) == [PERP_DOC_SHORT.key]
    index.remove(PERP_DOC_SHORT.key)
    assert len(index) == 1


# ---------------------------------------------------------------- properties

params_st = st.builds(
    MarketParams,
    position_fee_bps=st.integers(0, 100),
    maintenance_margin_bps=st.integers(10, 500),
    min_maintenance_usd=st.integers(0, 100).map(lambda d: d * WAD),
    tier_threshold_usd=st.just((usd(100_000), usd(1_000_000), 0)),
    tier_maintenance_bps=st.just((700, 900, 0)),
    token_scale=st.sampled_from([1, 10**12]),
)


@st.composite
def side_positions(draw, is_long: bool, ref: Indices, scale: int, count: int = 25) -> list[Position]:
    """Positions of one side with entries from $0.01 to $100,000, leverage up to ~100x and
    snapshots at or before the reference indices."""
    out = []
    n = draw(st.integers(1, count))
    for i in range(n):
        size = draw(st.integers(usd(1), usd(3_000_000)))
        entry = draw(st.integers(10**16, usd(100_000)))
        tokens = max(1, -(-size * WAD // entry) if not is_long else size * WAD // entry)
        collateral_wad = draw(st.integers(0, 2 * size))
        collateral = collateral_wad // scale
        borrow_snap = draw(st.integers(0, ref.borrow))
        funding_snap = draw(st.integers(-10**16, 10**16))
        out.append(Position("0x%040x" % (i + 1), ETH, is_long, size, tokens, collateral, borrow_snap, funding_snap))
    return out


indices_st = st.builds(Indices, borrow=st.integers(0, 10**16), funding_long=st.integers(-10**16, 10**16),
                       funding_short=st.integers(-10**16, 10**16))
price_st = st.integers(1, usd(200_000))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), is_long=st.booleans(), params=params_st, idx=indices_st)
def test_property__index_candidates_at_any_price__equal_brute_force(data, is_long, params, idx):
    """With the index built at the current indices, its candidate set at any price is
    exactly the set the health function finds by checking every position."""
    positions = data.draw(side_positions(is_long, idx, params.token_scale))
    side = SideIndex(ETH, is_long, params, idx)
    for pos in positions:
        side.upsert(pos)
    boundary = side.liquidation_price(positions[0].key)
    for price in data.draw(st.lists(price_st, min_size=1, max_size=8)) + [boundary - 1, boundary, boundary + 1]:
        if price < 1:
            continue
        expected = brute_force(positions, params, idx, price)
        assert set(side.candidates(price, idx)) == expected
        assert {p.key for p in side.liquidatable(price, idx)} == expected


@settings(max_examples=300, deadline=None)
@given(data=st.data(), is_long=st.booleans(), params=params_st, ref=indices_st,
       d_borrow=st.integers(0, 10**15), d_funding=st.integers(-10**15, 10**15))
def test_property__indices_moved_since_the_index__confirmed_candidates_equal_brute_force(
    data, is_long, params, ref, d_borrow, d_funding
):
    """After fees accrue (the indices move on), the drift-widened candidates still hold
    every liquidatable position, and confirming them gives exactly the brute-force set."""
    positions = data.draw(side_positions(is_long, ref, params.token_scale))
    side = SideIndex(ETH, is_long, params, ref)
    for pos in positions:
        side.upsert(pos)
    now = Indices(ref.borrow + d_borrow, ref.funding_long + d_funding, ref.funding_short + d_funding)
    for price in data.draw(st.lists(price_st, min_size=1, max_size=8)):
        expected = brute_force(positions, params, now, price)
        assert set(side.candidates(price, now)) >= expected
        assert {p.key for p in side.liquidatable(price, now)} == expected


@settings(max_examples=300, deadline=None)
@given(data=st.data(), is_long=st.booleans(), params=params_st, idx=indices_st)
def test_property__liquidation_price__is_the_exact_boundary(data, is_long, params, idx):
    pos = data.draw(side_positions(is_long, idx, params.token_scale, count=1))[0]
    p_liq = liquidation_price(pos, params, idx)
    for price in (p_liq - 1, p_liq, p_liq + 1, data.draw(price_st)):
        if price >= 1:
            assert is_liquidatable(pos, params, idx, price) == beyond(price, p_liq, is_long)
