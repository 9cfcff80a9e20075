"""The worked example of docs/perp.md, replayed on chain. Every expected number is derived
here from the published formulas; the doc shows the same numbers."""

from perpool import params

WAD = params.WAD
BPS = params.BPS
CFG = params.MARKET_CONFIG
HOUR = 3_600
HEARTBEAT = 240  # s between keeper pushes, under the 300 s max price age


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def test_doc_example__long_pays_borrowing_and_funding__short_receives(env, funded_trader, other_lp):
    long_trader, short_trader = funded_trader, other_lp
    # every block of this example is pinned, from one second after whatever came before
    env.chain.pending_timestamp = max(env.chain.blocks.head.timestamp, env.chain.pending_timestamp) + 1
    env.fund(short_trader)
    perp, eth, scale = env.perp, env.eth, env.scale
    pool_before = env.vault.pool_amount()

    # 1. open, in the same second: a long of $10,000 with $1,000 and a short of $5,000
    #    with $500, ETH at $3,000
    opened_at = env.chain.blocks.head.timestamp + 1
    env.chain.pending_timestamp = opened_at
    perp.increase_position(eth, True, env.usd(1_000), 10_000 * WAD, 3_000 * WAD, sender=long_trader)
    env.chain.pending_timestamp = opened_at
    perp.increase_position(eth, False, env.usd(500), 5_000 * WAD, 3_000 * WAD, sender=short_trader)
    assert env.reader.market_state(eth).borrow_index == 0  # nothing accrued before both were open
    long_pos = perp.get_position(long_trader, eth, True)
    short_pos = perp.get_position(short_trader, eth, False)
    open_fee_long = ceil_div(ceil_div(10_000 * WAD * CFG["position_fee_bps"], BPS), scale)
    open_fee_short = ceil_div(ceil_div(5_000 * WAD * CFG["position_fee_bps"], BPS), scale)
    assert open_fee_long == env.usd(10) and open_fee_short == env.usd(5)
    assert long_pos.collateral == env.usd(1_000) - open_fee_long  # $990
    assert long_pos.size_tokens == 10_000 * WAD * WAD // (3_000 * WAD)  # 3.333333333333333333
    assert short_pos.size_tokens == ceil_div(5_000 * WAD * WAD, 3_000 * WAD)  # 1.666666666666666667

    # 2. the rates: utilisation = reserved / the pool amount at the market's last touch
    #    (the short's open, before its fee), skew = |L - S| / (L + S)
    pool = pool_before + open_fee_long
    assert env.reader.market_state(eth).utilisation_pool_amount == pool
    reserved = ceil_div(15_000 * WAD * CFG["reserve_factor_bps"], BPS)
    utilisation = min(ceil_div(reserved * WAD, pool * scale), WAD)
    borrow_rate = ceil_div(CFG["borrowing_factor"] * utilisation, WAD)
    pay_rate = min(ceil_div(CFG["funding_factor"] * 5_000 * WAD, 15_000 * WAD), CFG["max_funding_rate"])
    rates = env.reader.rates(eth)
    assert rates.borrowing_rate_per_second == borrow_rate
    assert rates.borrowing_rate_per_hour == borrow_rate * HOUR
    assert rates.funding_rate_long_per_second == -pay_rate
    assert rates.funding_rate_short_per_second == pay_rate * 10_000 * WAD // (5_000 * WAD)

    # 3. the keeper pushes $3,000 every 4 minutes; one hour later ETH is $3,030 (+1 %:
    #    under the spread threshold, so min = max)
    start = env.reader.market_state(eth).last_update
    for t in range(start + HEARTBEAT, start + HOUR, HEARTBEAT):
        env.chain.pending_timestamp = t
        env.push(eth, 3_000 * WAD)
    env.chain.pending_timestamp = start + HOUR
    env.push(eth, 3_030 * WAD)
    assert env.oracle.get_price(eth, False) == env.oracle.get_price(eth, True) == 3_030 * WAD
    borrow_delta = borrow_rate * HOUR
    funding_delta_long = -pay_rate * HOUR
    funding_delta_short = pay_rate * HOUR * 10_000 * WAD // (5_000 * WAD)
    indices = perp.current_indices(eth)
    assert indices.borrow == borrow_delta
    assert indices.funding_long == funding_delta_long
    assert indices.funding_short == funding_delta_short

    # 4. the long closes everything
    pnl_wad = long_pos.size_tokens * 3_030 * WAD // WAD - 10_000 * WAD
    pnl = pnl_wad // scale  # profit rounds down
    borrow_fee = ceil_div(ceil_div(10_000 * WAD * borrow_delta, WAD), scale)
    funding_paid = ceil_div(ceil_div(10_000 * WAD * -funding_delta_long, WAD), scale)
    close_fee = ceil_div(ceil_div(10_000 * WAD * CFG["position_fee_bps"], BPS), scale)
    payout = long_pos.collateral + pnl - borrow_fee - funding_paid - close_fee
    balance = env.token.balanceOf(long_trader)
    env.chain.pending_timestamp = start + HOUR  # the close in the push's second: no fee accrues past the hour
    tx = perp.decrease_position(eth, True, 0, 10_000 * WAD, 0, long_trader, sender=long_trader)
    event = tx.decode_logs(perp.PositionUpdate)[0]
    assert (event.pnl, event.borrow_fee, event.funding, event.position_fee) == (pnl, borrow_fee, -funding_paid, close_fee)
    assert event.amount_out == payout == env.token.balanceOf(long_trader) - balance
    assert (pnl, borrow_fee, funding_paid, payout) == (env.usd(99.999999), 15_000, 333_334, 1_079_651_665)

    # 5. the short, still open, is owed its funding (rounded down)
    received = env.reader.position_info(short_trader, eth, False).pending_funding
    assert received == 5_000 * WAD * funding_delta_short // WAD
    assert env.vault.is_solvent()
