"""The traders' profit cap (Perp._cap_profit), applied to every realised profit.

Formula (Perp.vy, `_cap_profit` and `decrease_position`), WAD USD unless named:
    side profit S   = pnl_usd(side's open interest usd, tokens, close price), before the close
    cap             = floor(pool amount recorded at the market's accrual * token_scale
                            * max_pnl_factor_for_traders_bps / 10_000)
    realised        profit (token units, rounded down) x cap // S while S > cap; untouched
                    while S <= cap, and a loss is never touched
The pool amount recorded is the one `_accrue` reads in the same transaction: the Vault's
pool amount before the close (`market_state(m).utilisation_pool_amount` shows it after).
The cap is set to 1 % of the $1M pool ($10k) so a ~$600k side moving 1.9 % passes it; moves
stay under the Oracle's 2 % spread threshold, so min == max price and every close fills at
the pushed price. Everything else is the helpers model of a decrease (no insurance cut).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from helpers import (
    BPS,
    MAX_UINT,
    NO_CUT_RISK,
    WAD,
    Position,
    buckets,
    config_of,
    expect_update,
    fast_reverts,  # noqa: F401 (autouse fixture)
    indices_used,
    mul_div,
    open_position,
    pin,
    pnl_wad,
    predict_decrease,
    push_fresh,
)
from perpool import params

CAP_BPS = 100  # 1 % of the pool
BASE = params.LOCAL_MARKETS["ETH"]
ODD = 12_345_678_901_234_567
OPEN_PRICE = BASE + ODD
UP_PRICE = BASE * 10_190 // BPS + ODD // 3  # +1.9 %: under the spread threshold
DOWN_PRICE = BASE * 9_810 // BPS - ODD // 3
SIDES = pytest.mark.parametrize("is_long", [True, False], ids=["long", "short"])


@pytest.fixture(scope="module")
def capped(env, deployer):
    """The ETH market with max_pnl_factor_for_traders_bps = 1 %."""
    env.configurator.set_risk_config(
        env.eth, {**NO_CUT_RISK, "max_pnl_factor_for_traders_bps": CAP_BPS}, sender=deployer
    )
    return env


@pytest.fixture(scope="module")
def cfg(env):
    return config_of(env.configurator, env.eth)


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, capped, cfg, funded_trader, counterparty, hedger, deployer, lp):
    """Module- and session-scoped fixtures before any test (no snapshot rebase)."""


# ---------------------------------------------------------------- model


def favour(is_long: bool) -> int:
    return UP_PRICE if is_long else DOWN_PRICE


def opened(env, owner, is_long, collateral_usd, size, price=None) -> Position:
    if price is not None:
        push_fresh(env, env.eth, price)
    pin(env)
    open_position(env, owner, env.eth, is_long, env.usd(collateral_usd), size)
    return Position.of(env.perp.get_position(owner, env.eth, is_long))


def cap_of(env, pool_tokens: int) -> int:
    return pool_tokens * env.scale * CAP_BPS // BPS


def capped_change(change, pos, size, side_profit, cap):
    """The helpers model's decrease with the cap applied to its profit, then settled as usual."""
    if change.pnl <= 0 or side_profit <= cap:
        return change
    pnl = mul_div(change.pnl, cap, side_profit)
    settle = pnl + change.funding - change.borrow_fee - change.position_fee
    new, amount_out = change.position, 0
    if size == pos.size_usd:
        amount_out = max(pos.collateral + settle, 0)
    elif settle >= 0:
        amount_out = settle
    else:
        new = replace(new, collateral=pos.collateral + settle)
    collateral_change = new.collateral - pos.collateral
    return replace(
        change, position=new, pnl=pnl, amount_out=amount_out,
        pool_delta=-amount_out - collateral_change, collateral_delta=collateral_change,
    )


def close(env, cfg, owner, is_long, price, size=None):
    """Decrease `size` (default: all) at `price`, the last push, in the head's second; return
    (tx, model change, side profit before, cap, the change without the cap)."""
    perp, vault = env.perp, env.vault
    pos = Position.of(perp.get_position(owner, env.eth, is_long))
    size = pos.size_usd if size is None else size
    assert env.oracle.get_price(env.eth, True) == env.oracle.get_price(env.eth, False) == price
    usd, tokens = perp.open_interest(env.eth, is_long)
    side_profit = pnl_wad(usd, tokens, price, is_long)
    pool = vault.pool_amount()
    before = buckets(vault), env.token.balanceOf(owner)
    pin(env)
    worst = 0 if is_long else MAX_UINT
    tx = perp.decrease_position(env.eth, is_long, 0, size, worst, owner, sender=owner)
    # the cap's pool amount: recorded by this transaction's accrual, the pool before the close
    assert env.reader.market_state(env.eth).utilisation_pool_amount == pool
    idx = indices_used(env, env.eth)
    plain = predict_decrease(pos, is_long, 0, size, price, idx, cfg, env.scale)
    cap = cap_of(env, pool)
    change = capped_change(plain, pos, size, side_profit, cap)
    [log] = tx.decode_logs(perp.PositionUpdate)
    expect_update(log, change, owner, env.eth, is_long)
    assert tx.return_value == change.amount_out
    (p, c, e, i), balance = before
    assert buckets(vault) == (p + change.pool_delta, c + change.collateral_delta, e, i)
    assert env.token.balanceOf(owner) == balance + change.amount_out
    return tx, change, side_profit, cap, plain


# ---------------------------------------------------------------- above and below the cap


@SIDES
def test_decrease__side_profit_above_cap__profit_scaled_by_cap_over_side_profit(
    env, cfg, funded_trader, is_long
):
    assert env.configurator.risk_configs(env.eth).max_pnl_factor_for_traders_bps == CAP_BPS
    pos = opened(env, funded_trader, is_long, 60_000, 600_000 * WAD + ODD, OPEN_PRICE)
    push_fresh(env, env.eth, favour(is_long))

    _, change, side_profit, cap, plain = close(env, cfg, funded_trader, is_long, favour(is_long))

    assert side_profit > cap > 0
    assert plain.pnl > 0
    assert change.pnl == plain.pnl * cap // side_profit < plain.pnl
    fees = change.position_fee + change.borrow_fee
    assert change.amount_out == pos.collateral + change.pnl - fees
    assert change.amount_out == plain.amount_out - (plain.pnl - change.pnl)


@SIDES
def test_decrease__side_profit_below_cap__profit_untouched(env, cfg, funded_trader, is_long):
    pos = opened(env, funded_trader, is_long, 30_000, 300_000 * WAD + ODD, OPEN_PRICE)
    push_fresh(env, env.eth, favour(is_long))

    _, change, side_profit, cap, plain = close(env, cfg, funded_trader, is_long, favour(is_long))

    assert 0 < side_profit <= cap
    assert change == plain and change.pnl > 0
    assert change.amount_out == pos.collateral + plain.pnl - plain.position_fee - plain.borrow_fee


@pytest.mark.parametrize("over", [0, 1], ids=["at_cap", "one_wei_of_price_above"])
def test_decrease__side_profit_at_the_cap__untouched_and_just_above__scaled(
    env, cfg, funded_trader, over
):
    """S(p) = floor(tokens * p / WAD) - size: p0, the largest price with S <= cap, pays the
    whole profit; one wei of price more puts S above the cap and the profit is scaled."""
    pos = opened(env, funded_trader, True, 60_000, 600_000 * WAD + ODD, OPEN_PRICE)
    cap = cap_of(env, env.vault.pool_amount())
    p0 = (cap + pos.size_usd + 1) * WAD // pos.size_tokens
    while pnl_wad(pos.size_usd, pos.size_tokens, p0, True) > cap:
        p0 -= 1
    assert pnl_wad(pos.size_usd, pos.size_tokens, p0 + 1, True) > cap
    push_fresh(env, env.eth, p0 + over)

    _, change, side_profit, cap_used, plain = close(env, cfg, funded_trader, True, p0 + over)

    assert cap_used == cap
    if over:
        assert side_profit > cap
        assert change.pnl == plain.pnl * cap // side_profit < plain.pnl
    else:
        assert side_profit <= cap and change.pnl == plain.pnl


def test_decrease__partial_close_on_a_capped_side__scaled_by_the_whole_sides_profit(
    env, cfg, funded_trader, hedger
):
    """The denominator is the side's profit (both positions), not the position's."""
    pos = opened(env, funded_trader, True, 40_000, 400_000 * WAD + ODD, OPEN_PRICE)
    opened(env, hedger, True, 20_000, 200_000 * WAD + 3)
    push_fresh(env, env.eth, UP_PRICE)
    part = pos.size_usd // 3

    _, change, side_profit, cap, plain = close(env, cfg, funded_trader, True, UP_PRICE, part)

    own = pnl_wad(pos.size_usd, pos.size_tokens, UP_PRICE, True)
    assert side_profit > cap and side_profit > own > 0
    assert change.pnl == plain.pnl * cap // side_profit < plain.pnl
    assert change.position.size_usd == pos.size_usd - part
    assert change.position.collateral == pos.collateral  # the smaller profit still pays the fees


# ---------------------------------------------------------------- losers and the pool amount


def test_decrease__loser_on_a_capped_side__loss_untouched(env, cfg, funded_trader, hedger):
    """A long opened higher loses while the side's profit is above the cap."""
    opened(env, funded_trader, True, 60_000, 600_000 * WAD + ODD, OPEN_PRICE)
    high = BASE * 10_195 // BPS
    late = opened(env, hedger, True, 5_000, 50_000 * WAD + 7, high)
    push_fresh(env, env.eth, UP_PRICE)

    _, change, side_profit, cap, plain = close(env, cfg, hedger, True, UP_PRICE)

    assert side_profit > cap
    assert pnl_wad(late.size_usd, late.size_tokens, UP_PRICE, True) < 0
    assert change == plain and change.pnl < 0
    fees = change.position_fee + change.borrow_fee
    assert change.amount_out == late.collateral + change.pnl - fees


def test_decrease__loser_on_the_other_side__loss_untouched(env, cfg, funded_trader, counterparty):
    """A short losing while the long side is above the cap: its own side has no profit."""
    opened(env, funded_trader, True, 60_000, 600_000 * WAD + ODD, OPEN_PRICE)
    short = opened(env, counterparty, False, 10_000, 100_000 * WAD + 5)
    push_fresh(env, env.eth, UP_PRICE)
    usd, tokens = env.perp.open_interest(env.eth, True)
    assert pnl_wad(usd, tokens, UP_PRICE, True) > cap_of(env, env.vault.pool_amount())

    _, change, side_profit, _, plain = close(env, cfg, counterparty, False, UP_PRICE)

    assert side_profit < 0 and change.pnl < 0
    assert change == plain
    assert change.amount_out == (
        short.collateral + change.pnl + change.funding - change.position_fee - change.borrow_fee
    )


def test_decrease__deposit_after_the_last_accrual__cap_uses_the_pool_at_the_close(
    env, cfg, funded_trader, lp
):
    """An LP deposit raises the Vault's pool amount without touching the market's recorded
    one; the close's own accrual records the new amount and the cap follows it: a side
    profit above 1 % of the old pool but below 1 % of the new one is paid in full."""
    perp, vault = env.perp, env.vault
    opened(env, funded_trader, True, 60_000, 600_000 * WAD + ODD, OPEN_PRICE)
    recorded = env.reader.market_state(env.eth).utilisation_pool_amount  # read by the open's accrual
    push_fresh(env, env.eth, UP_PRICE)
    pin(env)
    vault.deposit(env.usd(200_000), 0, lp, sender=lp)
    pool = vault.pool_amount()
    assert env.reader.market_state(env.eth).utilisation_pool_amount == recorded < pool
    usd, tokens = perp.open_interest(env.eth, True)
    assert cap_of(env, recorded) < pnl_wad(usd, tokens, UP_PRICE, True) <= cap_of(env, pool)

    _, change, side_profit, cap, plain = close(env, cfg, funded_trader, True, UP_PRICE)

    assert cap == cap_of(env, pool)
    assert side_profit <= cap and change == plain and change.pnl > 0
