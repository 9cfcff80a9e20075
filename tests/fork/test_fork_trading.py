"""Using perpool on the fork as a user of the upstream deployment would: an LP deposits, a
trader opens and closes a position through the OrderBook (direct fills are off, as on any
public network) filled by a keeper's push-and-execute. Every test ends by checking that
the upstream saw none of it."""

from __future__ import annotations

import ape

from fork_scene import (
    BPS,
    FEE,
    MARKET_DECREASE,
    MARKET_INCREASE,
    MAX_UINT,
    WAD,
    assert_upstream_untouched,
    deal,
    deposit,
    ensure_prices,
    pin_next,
    push_and_execute,
)


def test_fork__lp_deposits_into_the_upstream_pool(fork, upstream, fork_protocol, chain, new_account):
    lp = new_account()
    before = upstream.state([lp.address])
    vault, token = fork_protocol.vault, fork_protocol.token
    supply, pool, held = vault.totalSupply(), vault.pool_amount(), token.balanceOf(vault)

    amount, shares, expected = deposit(fork_protocol, chain, lp, 100_000)

    assert shares > 0 and vault.balanceOf(lp) == shares
    if supply:  # an existing pool: shares at its max value, the fee left in it
        assert shares == expected
        assert vault.totalSupply() == supply + shares
    assert vault.pool_amount() == pool + amount
    assert token.balanceOf(vault) == held + amount and token.balanceOf(lp) == 0
    assert vault.is_solvent()
    assert_upstream_untouched(upstream, before, [lp.address], fork.url, fork.block)


def test_fork__open_and_close_a_position_through_orders(
    fork, upstream, fork_protocol, chain, fork_keeper, new_account
):
    lp, trader, keeper = new_account(), new_account(), fork_keeper
    watched = [lp.address, trader.address, keeper.address]
    before = upstream.state(watched)
    p, market = fork_protocol, fork_protocol.markets["ETH"]
    deposit(p, chain, lp, 100_000)  # liquidity for the position's reserve, whatever the pool upstream
    collateral, size = 1_000 * 10**6, 5_000 * WAD
    deal(chain.provider, p.token, trader, 10_000)
    start = p.token.balanceOf(trader)
    p.token.approve(p.vault, MAX_UINT, sender=trader)
    ensure_prices(p, chain, keeper)
    price = p.oracle.price_data(market).price
    fee_bps = p.configurator.configs(market).position_fee_bps
    scale = p.vault.token_scale()
    escrow = p.vault.escrow_amount()

    # direct fills are off on the fork as upstream: a direct open is refused
    with ape.reverts("perp: direct fills off"):
        p.perp.increase_position(market, True, collateral, size, MAX_UINT, sender=trader)

    # open: a market order, filled by the keeper with a price observed after it
    pin_next(chain)
    opened_id = p.orders.create_order(
        market, MARKET_INCREASE, True, collateral, size, MAX_UINT, 0, FEE, sender=trader
    ).return_value
    assert p.vault.escrow_amount() == escrow + collateral + FEE
    tx = push_and_execute(p, chain, keeper, market, price, [opened_id])
    (opened,) = tx.decode_logs(p.orders.OrderExecuted)
    assert (opened.order_id, opened.owner, opened.executor) == (opened_id, trader.address, keeper.address)
    position = p.perp.get_position(trader, market, True)
    open_fee = size * fee_bps // BPS // scale
    assert (position.size_usd, position.collateral) == (size, collateral - open_fee)
    assert position.size_tokens == size * WAD // opened.price
    assert p.vault.escrow_amount() == escrow

    # close: a market decrease at a price 1 % up, the payout credited to the trader
    pin_next(chain)
    closed_id = p.orders.create_order(
        market, MARKET_DECREASE, True, 0, size, 0, 0, FEE, sender=trader
    ).return_value
    tx = push_and_execute(p, chain, keeper, market, price * 101 // 100, [closed_id])
    (closed,) = tx.decode_logs(p.orders.OrderExecuted)
    assert p.perp.get_position(trader, market, True).size_usd == 0
    pnl = position.size_tokens * closed.price // WAD - size
    expected = position.collateral + (pnl - size * fee_bps // BPS) // scale  # less ~1 s of borrowing
    assert 0 <= expected - closed.amount_credited <= 10_000  # $0.01
    assert closed.amount_credited > collateral  # the move paid more than both fees
    assert p.vault.claimable(trader) == closed.amount_credited
    assert p.vault.claimable(keeper) == 2 * FEE  # one execution fee per batch

    p.vault.claim(trader, sender=trader)
    assert p.token.balanceOf(trader) == start - collateral - 2 * FEE + closed.amount_credited
    assert p.vault.is_solvent()
    assert_upstream_untouched(upstream, before, watched, fork.url, fork.block)
