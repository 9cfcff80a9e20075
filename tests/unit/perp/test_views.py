"""Perp's read side: position_info (entry price, PnL, pending fees, leverage, health and the
liquidation price), market_state, open_interest, configs, is_market and position_key.

Formulas (Perp.vy), the position valued at its close price (longs at the min, shorts at the max):
    entry_price     = size_usd * WAD / size_tokens, rounded up for longs, down for shorts
    pnl             = floor(tokens * p / WAD) - size (long);  size - ceil(tokens * p / WAD) (short)
    pending borrow  = ceil(size * (borrow_now - snapshot) / WAD)
    close fee       = ceil(size * position_fee_bps / 10_000)
    remaining       = collateral * scale + pnl + funding - borrow - close fee
    maintenance     = max(ceil(size * maintenance_margin_bps / 10_000), min_maintenance_usd)
    leverage_bps    = ceil(size * 10_000 / (collateral * scale))
    liquidation     remaining(p) = maintenance solved for p: with
                    fixed = collateral * scale + funding - borrow - close fee - maintenance,
                    long p = ceil((size - fixed) * WAD / tokens), short p = floor((size + fixed) * WAD / tokens)
Block times are pinned (`chain.pending_timestamp`; Anvil accepts equal timestamps) so a price
push and the view that follows see the same accrued fees.
"""

from __future__ import annotations

import ape
import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak

from perpool import params

WAD = params.WAD
BPS = params.BPS
ETH_PRICE = params.LOCAL_MARKETS["ETH"]
MAX = 2**256 - 1
CFG = params.MARKET_CONFIG  # what deploy_protocol lists every market with


def mul_div(x: int, y: int, d: int, round_up: bool) -> int:
    q, r = divmod(x * y, d)
    return q + 1 if round_up and r else q


def pnl_wad(usd: int, tokens: int, price: int, is_long: bool) -> int:
    if is_long:
        return tokens * price // WAD - usd
    return usd - mul_div(tokens, price, WAD, True)


def funding_wad(size: int, delta: int) -> int:
    """Received rounds down, paid rounds up (away from zero)."""
    if delta >= 0:
        return size * delta // WAD
    return -mul_div(size, -delta, WAD, True)


def liquidation_price(size, tokens, collateral_wad, borrow, funding, close_fee, maintenance, is_long):
    fixed = collateral_wad + funding - borrow - close_fee - maintenance
    if is_long:
        numerator = size - fixed
        return 0 if numerator <= 0 else mul_div(numerator, WAD, tokens, True)
    numerator = size + fixed
    return 0 if numerator <= 0 else mul_div(numerator, WAD, tokens, False)


def expected_info(env, pos, is_long: bool, price: int, idx) -> dict:
    """position_info's fields from the stored position, the indices and the close price."""
    size, tokens = pos.size_usd, pos.size_tokens
    collateral_wad = pos.collateral * env.scale
    borrow = mul_div(size, idx.borrow - pos.borrow_index, WAD, True)
    funding = funding_wad(size, (idx.funding_long if is_long else idx.funding_short) - pos.funding_index)
    close_fee = mul_div(size, CFG["position_fee_bps"], BPS, True)
    maintenance = max(mul_div(size, CFG["maintenance_margin_bps"], BPS, True), CFG["min_maintenance_usd"])
    pnl = pnl_wad(size, tokens, price, is_long)
    remaining = collateral_wad + pnl + funding - borrow - close_fee
    return {
        "entry_price": mul_div(size, WAD, tokens, is_long),
        "mark_price": price,
        "pnl": pnl,
        "pending_borrowing_fee": borrow,
        "pending_funding": funding,
        "close_fee": close_fee,
        "remaining_collateral": remaining,
        "maintenance_margin": maintenance,
        "leverage_bps": mul_div(size, BPS, collateral_wad, True),
        "liquidation_price": liquidation_price(
            size, tokens, collateral_wad, borrow, funding, close_fee, maintenance, is_long
        ),
        "is_liquidatable": remaining < maintenance,
    }


# ---------------------------------------------------------------- helpers



def head_ts(env) -> int:
    return env.chain.blocks.head.timestamp


def pin(env, ts: int) -> None:
    env.chain.pending_timestamp = ts


def push_at(env, ts: int, price: int, observed_at: int | None = None):
    """Push an ETH price in a block at time `ts`, observed at `observed_at` (default `ts`)."""
    pin(env, ts)
    observed = ts if observed_at is None else observed_at
    return env.oracle.set_prices([env.eth], [price], observed, sender=env.keeper)


def open_position(env, account, is_long, collateral_usd, size):
    return env.perp.increase_position(
        env.eth, is_long, env.usd(collateral_usd), size, MAX if is_long else 0, sender=account
    )


def info_dict(info) -> dict:
    return {k: getattr(info, k) for k in (
        "entry_price", "mark_price", "pnl", "pending_borrowing_fee", "pending_funding", "close_fee",
        "remaining_collateral", "maintenance_margin", "leverage_bps", "liquidation_price",
        "is_liquidatable",
    )}


# ---------------------------------------------------------------- position_info


@pytest.mark.parametrize("is_long", [True, False], ids=["long", "short"])
def test_position_info__after_a_move_and_an_hour__fields_match_formulas(env, funded_trader, is_long):
    perp = env.perp
    size = 45_000 * WAD + 12_345
    open_position(env, funded_trader, is_long, 1_000, size)
    pos = perp.get_position(funded_trader, env.eth, is_long)
    # long tokens round down, short tokens round up
    assert pos.size_tokens == mul_div(size, WAD, ETH_PRICE, not is_long)
    push_at(env, head_ts(env) + 3_600, ETH_PRICE * 101 // 100)  # +1 %

    info = env.reader.position_info(funded_trader, env.eth, is_long)

    close_price = env.oracle.get_price(env.eth, not is_long)  # longs close at the min
    expected = expected_info(env, pos, is_long, close_price, perp.current_indices(env.eth))
    assert info_dict(info) == expected
    assert (info.size_usd, info.size_tokens, info.collateral) == (pos.size_usd, pos.size_tokens, pos.collateral)
    assert info.pending_borrowing_fee > 0 and info.pending_funding == 0  # one side only
    # the token amount is rounded by less than one wei: the entry moves < price / tokens
    assert abs(info.entry_price - ETH_PRICE) <= mul_div(ETH_PRICE, 1, pos.size_tokens, True)
    assert 45 * BPS < info.leverage_bps < 50 * BPS  # 45x nominal, the open fee came out of collateral
    assert not info.is_liquidatable


def test_position_info__both_sides_after_a_day__pending_funding_signed_per_side(env, funded_trader, counterparty):
    perp = env.perp
    open_position(env, funded_trader, True, 20_000, 200_000 * WAD)
    open_position(env, counterparty, False, 5_000, 50_000 * WAD)
    push_at(env, head_ts(env) + 86_400, ETH_PRICE)

    idx = perp.current_indices(env.eth)
    for account, is_long in ((funded_trader, True), (counterparty, False)):
        info = env.reader.position_info(account, env.eth, is_long)
        pos = perp.get_position(account, env.eth, is_long)
        close_price = env.oracle.get_price(env.eth, not is_long)
        assert info_dict(info) == expected_info(env, pos, is_long, close_price, idx)
    assert env.reader.position_info(funded_trader, env.eth, True).pending_funding < 0  # heavier side pays
    assert env.reader.position_info(counterparty, env.eth, False).pending_funding > 0


def test_position_info__no_position__all_zero(env, funded_trader):
    info = env.reader.position_info(funded_trader, env.eth, True)
    assert all(v == 0 for v in info_dict(info).values())
    assert (info.size_usd, info.size_tokens, info.collateral) == (0, 0, 0)


def test_position_without_index_tokens__long_open_or_short_partial_close__refused(env, funded_trader):
    """position_info divides by size_tokens (entry and liquidation price), so no position
    may hold size without index tokens: a long of less than price / WAD wei of USD buys
    floor(size * WAD / price) = 0 tokens, and a short's partial close rounds the tokens
    closed up, which can take all of them."""
    perp = env.perp
    size = ETH_PRICE // WAD - 1
    assert mul_div(size, WAD, ETH_PRICE, False) == 0
    with ape.reverts("perp: position too small"):
        open_position(env, funded_trader, True, 11, size)

    open_position(env, funded_trader, False, 11, 2)  # 2 wei of USD: 1 token wei, rounded up
    pos = perp.get_position(funded_trader, env.eth, False)
    assert (pos.size_usd, pos.size_tokens) == (2, 1)
    assert mul_div(pos.size_tokens, 1, pos.size_usd, True) == pos.size_tokens  # closing 1 wei takes it all
    with ape.reverts("perp: position too small"):
        perp.decrease_position(env.eth, False, 0, 1, MAX, funded_trader, sender=funded_trader)
    info = env.reader.position_info(funded_trader, env.eth, False)  # still readable
    assert (info.size_usd, info.size_tokens) == (2, 1)


@pytest.mark.parametrize("is_long", [True, False], ids=["long", "short"])
def test_liquidation_price__pushed_there__remaining_within_rounding_of_maintenance_one_step_past_liquidatable(
    env, funded_trader, is_long
):
    perp = env.perp
    size = 45_000 * WAD + 999  # 45x on $1,000: the liquidation price is ~1.5 % away, no spread
    open_position(env, funded_trader, is_long, 1_000, size)
    pos = perp.get_position(funded_trader, env.eth, is_long)
    # The liquidation price moves with time (borrowing), not with the price. Every push below
    # lands in a block at the same time `ts`, observed a second later each (within the
    # oracle's future skew), so all the views see the same accrued fees. The price never
    # goes stale and moves < 2 %, so no spread: the close price is the pushed price.
    ts = head_ts(env) + 60
    push_at(env, ts, ETH_PRICE)
    info = env.reader.position_info(funded_trader, env.eth, is_long)
    idx = perp.current_indices(env.eth)
    liq = info.liquidation_price
    assert liq == expected_info(env, pos, is_long, ETH_PRICE, idx)["liquidation_price"]
    assert info.pending_borrowing_fee > 0  # the fees of 60 s are in it
    assert (liq < ETH_PRICE) == is_long
    assert abs(liq - ETH_PRICE) * BPS < 200 * ETH_PRICE  # within the 2 % that turns the spread on
    assert not info.is_liquidatable
    rounding = mul_div(pos.size_tokens, 1, WAD, True)  # size_tokens x one wei of price

    push_at(env, ts, liq, observed_at=ts + 1)
    at_liq = env.reader.position_info(funded_trader, env.eth, is_long)

    assert head_ts(env) == ts and at_liq.mark_price == liq
    assert at_liq.liquidation_price == liq
    assert 0 <= at_liq.remaining_collateral - at_liq.maintenance_margin <= rounding
    assert not at_liq.is_liquidatable

    past = liq - 1 if is_long else liq + 1
    push_at(env, ts, past, observed_at=ts + 2)
    beyond = env.reader.position_info(funded_trader, env.eth, is_long)

    assert beyond.mark_price == past
    assert beyond.is_liquidatable
    assert beyond.remaining_collateral < beyond.maintenance_margin
    assert info_dict(beyond) == expected_info(env, pos, is_long, past, idx)


# ---------------------------------------------------------------- market views


def test_market_state_and_open_interest__two_traders_both_sides__equal_sums_and_lazy_indices(
    env, funded_trader, counterparty
):
    perp = env.perp
    ts = head_ts(env) + 60
    push_at(env, ts, ETH_PRICE)
    book = [
        (funded_trader, True, 10_000, 100_000 * WAD + 1),
        (counterparty, True, 3_000, 30_000 * WAD + 7),
        (counterparty, False, 6_000, 66_666 * WAD + 66),
    ]
    for account, is_long, collateral, size in book:
        pin(env, ts)
        open_position(env, account, is_long, collateral, size)
    positions = {(a.address, l): perp.get_position(a, env.eth, l) for a, l, _, _ in book}
    long_usd = sum(p.size_usd for (_, l), p in positions.items() if l)
    long_tokens = sum(p.size_tokens for (_, l), p in positions.items() if l)
    short_usd = sum(p.size_usd for (_, l), p in positions.items() if not l)
    short_tokens = sum(p.size_tokens for (_, l), p in positions.items() if not l)

    ms = env.reader.market_state(env.eth)

    assert ms.last_update == ts
    assert (ms.open_interest_long_usd, ms.open_interest_long_tokens) == (long_usd, long_tokens)
    assert (ms.open_interest_short_usd, ms.open_interest_short_tokens) == (short_usd, short_tokens)
    assert ms.reserved_usd == mul_div(long_usd + short_usd, CFG["reserve_factor_bps"], BPS, True)
    assert tuple(perp.open_interest(env.eth, True)) == (long_usd, long_tokens)
    assert tuple(perp.open_interest(env.eth, False)) == (short_usd, short_tokens)
    assert tuple(perp.open_interest(env.btc, True)) == tuple(perp.open_interest(env.btc, False)) == (0, 0)
    now = perp.current_indices(env.eth)
    assert (now.borrow, now.funding_long, now.funding_short) == (
        ms.borrow_index, ms.funding_index_long, ms.funding_index_short
    )
    for p in positions.values():  # every position was opened at the stored indices
        assert p.borrow_index == ms.borrow_index

    env.chain.mine(deltatime=3_600)
    later = env.reader.market_state(env.eth)
    assert later == ms  # nothing accrues in storage without a touch
    moved = perp.current_indices(env.eth)
    assert moved.borrow > ms.borrow_index
    assert moved.funding_long < ms.funding_index_long  # longs heavier: they pay
    assert moved.funding_short > ms.funding_index_short


def test_configs__listed_markets__equal_deploy_config_unknown_market_all_zero(env):
    perp = env.perp
    unknown = max(env.markets.values()) + 1
    for market in env.markets.values():
        cfg = env.configurator.configs(market)
        assert {k: getattr(cfg, k) for k in CFG} == CFG
    empty = env.configurator.configs(unknown)
    assert all(getattr(empty, k) == 0 for k in CFG)


def test_is_market__listed_and_unlisted_ids__true_only_for_listed(env):
    perp = env.perp
    for market in env.markets.values():
        assert perp.is_market(market)
    assert not perp.is_market(0)
    assert not perp.is_market(max(env.markets.values()) + 1)
    assert [perp.markets(i) for i in range(len(env.markets))] == list(env.markets.values())


def test_position_key__any_account_market_side__keccak_of_abi_encoding(env, funded_trader, counterparty):
    perp = env.perp
    keys = set()
    for account in (funded_trader, counterparty):
        for market in (env.eth, env.btc, 99):
            for is_long in (True, False):
                expected = keccak(abi_encode(["address", "uint256", "bool"], [account.address, market, is_long]))
                key = perp.position_key(account, market, is_long)
                assert bytes(key) == expected
                keys.add(bytes(key))
    assert len(keys) == 12  # all distinct

    tx = open_position(env, funded_trader, False, 1_000, 5_000 * WAD)
    [ev] = tx.decode_logs(perp.PositionUpdate)
    assert bytes(ev.key) == bytes(perp.position_key(funded_trader, env.eth, False))
    pos = perp.get_position(funded_trader, env.eth, False)
    assert (pos.size_usd, pos.size_tokens, pos.collateral) == (ev.size_usd, ev.size_tokens, ev.collateral)
    assert (pos.borrow_index, pos.funding_index) == (ev.borrow_index, ev.funding_index)
