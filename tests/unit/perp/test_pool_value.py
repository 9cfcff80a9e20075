"""Perp.pool_value against a Python recomputation, LP share pricing through it, its
staleness rule, and the per-side aggregates it is built from.

Recomputation (Perp.vy `pool_value`), per market with open interest and per side with size:
    assets     += floor(OI_usd * borrow_now / WAD) - Σ floor(size * borrow_snapshot / WAD)
    trader_pnl += trunc(OI_usd * funding_now / WAD) - Σ trunc(size * funding_snapshot / WAD)
    trader_pnl += PnL(OI_usd, OI_tokens, price), longs at the min price and shorts at the
                  max when maximizing (the reverse when minimizing)
    value = max(pool_amount * scale + pending borrowing - min(trader_pnl, cap), 0),
    cap = floor(pool_amount * scale * max_pnl_factor_bps / 10_000)
The snapshot sums are not exposed: the test rebuilds them from every open position, which
also checks that the contract's running sums equal the sums over positions.
"""

from __future__ import annotations

import pytest
from eth_abi import decode as abi_decode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from web3.exceptions import ContractLogicError

from perpool import params
from perpool.prices import push_stepped
from chain_isolation import isolated

WAD = params.WAD
BPS = params.BPS
ETH_PRICE = params.LOCAL_MARKETS["ETH"]
BTC_PRICE = params.LOCAL_MARKETS["BTC"]
DAY = 86_400
RESERVE_FACTOR_BPS = params.MARKET_CONFIG["reserve_factor_bps"]  # deploy_protocol's config
MAX = 2**256 - 1
ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)


def mul_div(x: int, y: int, d: int, round_up: bool) -> int:
    q, r = divmod(x * y, d)
    return q + 1 if round_up and r else q


def trunc_mul_wad(x: int, y: int) -> int:
    """x * y / WAD truncated toward zero, as Perp's `_signed_mul_wad`."""
    q = abs(x * y) // WAD
    return q if x * y >= 0 else -q


def pnl_wad(usd: int, tokens: int, price: int, is_long: bool) -> int:
    if is_long:
        return tokens * price // WAD - usd
    return usd - mul_div(tokens, price, WAD, True)


# ---------------------------------------------------------------- fixtures and helpers




@pytest.fixture(scope="module")
def holders(funded_trader, counterparty, hedger):
    """Every account that may hold a position in this module."""
    return [funded_trader, counterparty, hedger]


def head_ts(env) -> int:
    return env.chain.blocks.head.timestamp


def pin(env, ts: int) -> None:
    env.chain.pending_timestamp = ts


def push_prices(env, eth: int | None = None, btc: int | None = None, after: int = 1) -> int:
    """Push ETH and BTC prices (unchanged when None) `after` seconds past the head (a move
    beyond the jump bound stepped through it in the seconds before, as the keeper does)."""
    ts = head_ts(env) + after
    markets = [env.eth, env.btc]
    current = [env.oracle.price_data(m).price for m in markets]
    prices = [eth or current[0], btc or current[1]]
    return push_stepped(env.oracle, env.chain, env.keeper, dict(zip(markets, prices)), at=ts)


def increase(env, account, market, is_long, collateral_usd, size):
    return env.perp.increase_position(
        market, is_long, env.usd(collateral_usd), size, MAX if is_long else 0, sender=account
    )


def decrease(env, account, market, is_long, size):
    return env.perp.decrease_position(
        market, is_long, 0, size, 0 if is_long else MAX, account, sender=account
    )


def read_book(env, holders) -> dict:
    """Every input of the recomputation, read once: the pool amount, the cap, and per
    market its `market_state`, `current_indices`, the holders' positions per side and the
    oracle's min and max prices."""
    perp, oracle = env.perp, env.oracle
    book = {
        "pool": env.vault.pool_amount() * env.scale,
        "cap_bps": perp.max_pnl_factor_bps(),
        "markets": {},
    }
    for market in env.markets.values():
        ms = env.reader.market_state(market)
        entry = {"ms": ms, "positions": {}, "prices": {}}
        for is_long in (True, False):
            entry["positions"][is_long] = [perp.get_position(a, market, is_long) for a in holders]
            usd = ms.open_interest_long_usd if is_long else ms.open_interest_short_usd
            if usd:
                entry["prices"][is_long] = {m: oracle.get_price(market, m) for m in (True, False)}
        if entry["prices"]:
            entry["idx"] = perp.current_indices(market)
        book["markets"][market] = entry
    return book


def recompute(env, holders, maximize: bool, book: dict | None = None) -> dict:
    """The pool value from the Vault's pool amount, `market_state` aggregates,
    `current_indices`, the oracle prices and the positions' snapshots."""
    book = read_book(env, holders) if book is None else book
    pool = book["pool"]
    assets, trader_pnl = pool, 0
    for entry in book["markets"].values():
        ms = entry["ms"]
        sides = (
            (True, ms.open_interest_long_usd, ms.open_interest_long_tokens),
            (False, ms.open_interest_short_usd, ms.open_interest_short_tokens),
        )
        for is_long, usd, tokens in sides:
            if usd == 0:
                continue
            idx = entry["idx"]
            positions = [p for p in entry["positions"][is_long] if p.size_usd]
            borrow_sum = sum(p.size_usd * p.borrow_index // WAD for p in positions)
            funding_sum = sum(trunc_mul_wad(p.size_usd, p.funding_index) for p in positions)
            assets += usd * idx.borrow // WAD - borrow_sum
            funding_now = idx.funding_long if is_long else idx.funding_short
            trader_pnl += trunc_mul_wad(usd, funding_now) - funding_sum
            # longs at the min price when maximizing the pool, shorts at the max
            price = entry["prices"][is_long][is_long != maximize]
            trader_pnl += pnl_wad(usd, tokens, price, is_long)
    cap = pool * book["cap_bps"] // BPS
    value = max(assets - min(trader_pnl, cap), 0)
    return {"value": value, "assets": assets, "pool": pool, "trader_pnl": trader_pnl, "cap": cap}


def revert_reason(env, contract, method: str, *args, sender=None) -> str | None:
    """The revert reason of calling `method` now (None if it succeeds), through a plain
    eth_call: Ape's `reverts` looks nested reasons up through slow traces."""
    tx = {"to": contract.address, "data": getattr(contract, method).encode_input(*args)}
    if sender is not None:
        tx["from"] = sender.address
    try:
        env.chain.provider.web3.eth.call(tx)
    except ContractLogicError as err:
        data = bytes.fromhex(str(err.data)[2:])
        if data[:4] == ERROR_SELECTOR:
            return abi_decode(["string"], data[4:])[0]
        return ""
    return None


def open_book(env, funded_trader, counterparty, hedger):
    """Positions on both sides of both markets, a day of fees, then prices move: ETH +5 %
    (longs heavier, so traders are net in profit), BTC -3 %; both moves turn the spread on."""
    increase(env, funded_trader, env.eth, True, 30_000, 300_000 * WAD)
    increase(env, counterparty, env.eth, False, 12_000, 120_000 * WAD + 7)
    increase(env, hedger, env.eth, True, 2_000, 40_000 * WAD + 123_456_789)
    increase(env, counterparty, env.btc, True, 5_000, 50_000 * WAD + 1)
    increase(env, hedger, env.btc, False, 8_000, 80_000 * WAD + 999)
    push_prices(env, after=DAY)
    push_prices(env, eth=ETH_PRICE * 105 // 100, btc=BTC_PRICE * 97 // 100)
    env.chain.mine(deltatime=60)


# ---------------------------------------------------------------- pool value


def test_pool_value__open_book_after_a_day_and_moves__equals_recomputation(
    env, funded_trader, counterparty, hedger, holders
):
    open_book(env, funded_trader, counterparty, hedger)

    high, low = env.perp.pool_value(True), env.perp.pool_value(False)

    expected_high, expected_low = recompute(env, holders, True), recompute(env, holders, False)
    assert high == expected_high["value"]
    assert low == expected_low["value"]
    assert high > low  # the spread is on: the pool is worth more at the favourable prices
    assert expected_high["assets"] > expected_high["pool"]  # a day of pending borrowing
    assert 0 < expected_high["trader_pnl"] < expected_high["cap"]  # profit, cap not binding
    assert env.vault.pool_value(True) == high and env.vault.pool_value(False) == low


def test_pool_value__trader_profit_above_cap__subtracts_only_the_cap(
    env, funded_trader, counterparty, hedger, holders, deployer
):
    open_book(env, funded_trader, counterparty, hedger)
    env.configurator.set_max_pnl_factor(1, sender=deployer)  # cap = 0.01 % of the pool amount

    for maximize in (True, False):
        value = env.perp.pool_value(maximize)

        r = recompute(env, holders, maximize)
        assert r["cap"] == r["pool"] * 1 // BPS
        assert r["trader_pnl"] > r["cap"]
        assert value == r["value"] == r["assets"] - r["cap"]

    env.configurator.set_max_pnl_factor(BPS, sender=deployer)
    r = recompute(env, holders, False)
    assert r["trader_pnl"] < r["cap"]
    assert env.perp.pool_value(False) == r["assets"] - r["trader_pnl"] < value


def test_pool_value__traders_in_loss__adds_their_loss(env, funded_trader, counterparty, hedger, holders):
    increase(env, funded_trader, env.eth, True, 30_000, 300_000 * WAD)
    increase(env, hedger, env.eth, False, 5_000, 50_000 * WAD)
    push_prices(env, eth=ETH_PRICE * 96 // 100, after=DAY)

    for maximize in (True, False):
        r = recompute(env, holders, maximize)
        assert r["trader_pnl"] < 0
        assert env.perp.pool_value(maximize) == r["value"] > r["pool"]


def test_vault_deposit__open_book__mints_shares_priced_at_pool_value_max(
    env, funded_trader, counterparty, hedger, holders, lp
):
    vault = env.vault
    open_book(env, funded_trader, counterparty, hedger)
    now = head_ts(env)
    value_max, value_min = env.perp.pool_value(True), env.perp.pool_value(False)
    assert value_max == recompute(env, holders, True)["value"] > value_min
    supply, shares_before = vault.totalSupply(), vault.balanceOf(lp)
    amount = env.usd(100_000) + 7
    fee = mul_div(amount, vault.mint_fee_bps(), BPS, True)
    net_wad = (amount - fee) * env.scale
    expected = net_wad * supply // value_max

    pin(env, now)  # same block time as the views: the same pending fees
    vault.deposit(amount, 0, lp, sender=lp)

    assert vault.balanceOf(lp) - shares_before == expected
    assert expected < net_wad * supply // value_min  # not priced at the lower value


def test_vault_redeem__open_book__pays_at_pool_value_min(env, funded_trader, counterparty, hedger, holders, lp):
    vault, token = env.vault, env.token
    open_book(env, funded_trader, counterparty, hedger)  # a day: the LP's cooldown is over
    now = head_ts(env)
    value_max, value_min = env.perp.pool_value(True), env.perp.pool_value(False)
    assert value_min == recompute(env, holders, False)["value"] < value_max
    supply, tokens_before = vault.totalSupply(), token.balanceOf(lp)
    shares = vault.balanceOf(lp) // 10 + 3
    gross = shares * value_min // supply // env.scale
    expected = gross - mul_div(gross, vault.burn_fee_bps(), BPS, True)

    pin(env, now)
    vault.redeem(shares, 0, lp, sender=lp)

    assert token.balanceOf(lp) - tokens_before == expected
    assert expected < shares * value_max // supply // env.scale  # not paid at the higher value


def test_pool_value__stale_price_in_market_with_open_interest__reverts(env, funded_trader, lp):
    increase(env, funded_trader, env.eth, True, 10_000, 100_000 * WAD)
    max_age = env.oracle.config().max_price_age
    env.chain.mine(deltatime=max_age + 1)
    assert env.oracle.is_stale(env.eth)

    for maximize in (True, False):
        assert revert_reason(env, env.perp, "pool_value", maximize) == "oracle: stale price"
    # so LPs can neither deposit nor redeem on a stale valuation
    assert revert_reason(env, env.vault, "deposit", env.usd(1_000), 0, lp.address, sender=lp) == (
        "oracle: stale price"
    )
    env.push(env.eth, ETH_PRICE)
    assert revert_reason(env, env.perp, "pool_value", True) is None


def test_pool_value__stale_price_in_market_without_open_interest__ignored(env, funded_trader, holders):
    increase(env, funded_trader, env.eth, True, 10_000, 100_000 * WAD)
    max_age = env.oracle.config().max_price_age
    env.chain.mine(deltatime=max_age + 1)
    env.push(env.eth, ETH_PRICE)  # only ETH is fresh again

    assert env.oracle.is_stale(env.btc)
    assert env.perp.pool_value(False) == recompute(env, holders, False)["value"]


def test_pool_value__no_open_interest_and_stale_prices__equals_pool_amount(env):
    env.chain.mine(deltatime=DAY)
    assert env.oracle.is_stale(env.eth) and env.oracle.is_stale(env.btc)

    pool = env.vault.pool_amount() * env.scale
    assert env.perp.pool_value(True) == env.perp.pool_value(False) == pool


# ---------------------------------------------------------------- aggregates


def check_aggregates(env, holders) -> dict:
    """market_state's open interest equals the sums over positions; the reserve follows;
    pool_value (built from the running snapshot sums) equals the recomputation."""
    perp = env.perp
    book = read_book(env, holders)
    total_reserved = reserved_tokens = 0
    for market, entry in book["markets"].items():
        ms = entry["ms"]
        for is_long in (True, False):
            positions = entry["positions"][is_long]
            usd = sum(p.size_usd for p in positions)
            tokens = sum(p.size_tokens for p in positions)
            if is_long:
                assert (ms.open_interest_long_usd, ms.open_interest_long_tokens) == (usd, tokens)
            else:
                assert (ms.open_interest_short_usd, ms.open_interest_short_tokens) == (usd, tokens)
        reserved = mul_div(
            ms.open_interest_long_usd + ms.open_interest_short_usd, RESERVE_FACTOR_BPS, BPS, True
        )
        assert ms.reserved_usd == reserved
        total_reserved += reserved
        reserved_tokens += mul_div(reserved, 1, env.scale, True)
    assert env.reader.total_reserved_usd() == total_reserved
    # the Vault's reserve is each market's reserve in tokens, each rounded up
    assert env.vault.reserved_amount() == reserved_tokens
    for maximize in (True, False):
        assert perp.pool_value(maximize) == recompute(env, holders, maximize, book)["value"]
    return book


def test_aggregates__opens_partial_closes_and_closes__equal_sums_over_positions(
    env, funded_trader, counterparty, hedger, holders
):
    eth, btc = env.eth, env.btc
    perp = env.perp

    def third(account, market, is_long):
        return perp.get_position(account, market, is_long).size_usd // 3 + 1

    steps = [
        lambda: increase(env, funded_trader, eth, True, 5_000, 100_000 * WAD),
        lambda: push_prices(env, eth=3_021_500_000_000_000_000_000, after=600),
        lambda: increase(env, counterparty, eth, True, 3_000, 77_777 * WAD + 770_000_000_000_000_007),
        lambda: increase(env, funded_trader, eth, True, 1_000, 23_456 * WAD + 789),
        lambda: increase(env, hedger, btc, False, 2_000, 31_337 * WAD + 31),
        lambda: push_prices(env, eth=2_987_250_000_000_000_000_000, btc=60_313 * WAD, after=600),
        lambda: decrease(env, funded_trader, eth, True, third(funded_trader, eth, True)),
        lambda: increase(env, hedger, eth, False, 4_000, 55_555 * WAD + 5),
        lambda: decrease(env, counterparty, eth, True, 12_345 * WAD + 6_789),
        lambda: decrease(env, hedger, btc, False, third(hedger, btc, False)),
        lambda: push_prices(env, eth=3_043_100_000_000_000_000_000, after=600),
        lambda: decrease(env, hedger, eth, False, third(hedger, eth, False)),
        lambda: decrease(env, funded_trader, eth, True, perp.get_position(funded_trader, eth, True).size_usd),
        lambda: increase(env, counterparty, eth, True, 500, 10_000 * WAD + 3),
        lambda: decrease(env, hedger, eth, False, 1),  # the smallest partial close
        lambda: decrease(env, hedger, eth, False, perp.get_position(hedger, eth, False).size_usd),
        lambda: decrease(env, hedger, btc, False, perp.get_position(hedger, btc, False).size_usd),
        lambda: decrease(env, counterparty, eth, True, perp.get_position(counterparty, eth, True).size_usd),
    ]
    for step in steps:
        step()
        book = check_aggregates(env, holders)
        for market in (eth, btc):
            for is_long in (True, False):
                positions = book["markets"][market]["positions"][is_long]
                assert tuple(perp.open_interest(market, is_long)) == (
                    sum(p.size_usd for p in positions), sum(p.size_tokens for p in positions)
                )

    for market in (eth, btc):
        for is_long in (True, False):
            assert tuple(perp.open_interest(market, is_long)) == (0, 0)
    assert env.reader.total_reserved_usd() == 0 and env.vault.reserved_amount() == 0
    assert env.vault.collateral_amount() == 0
    assert perp.pool_value(True) == perp.pool_value(False) == env.vault.pool_amount() * env.scale


_step = st.tuples(
    st.integers(0, 2),  # actor
    st.booleans(),  # is_long
    st.sampled_from(["open", "partial", "close"]),
    st.integers(1, 9_999),  # partial fraction, bps of the size
    st.integers(20, 100_000),  # open size, whole dollars
    st.integers(-150, 150),  # price move of the step, bps
)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(_step, min_size=4, max_size=8))
def test_aggregates__random_sequences__equal_sums_over_positions(env, holders, steps):
    perp = env.perp
    with isolated(env.chain):
        push_prices(env)
        for actor, is_long, kind, fraction, dollars, move in steps:
            account = holders[actor]
            price = env.oracle.price_data(env.eth).price
            push_prices(env, eth=price * (BPS + move) // BPS, after=30)
            size = perp.get_position(account, env.eth, is_long).size_usd
            if kind == "open" or size == 0:
                # 4x at most, so the moves never make a partial close unhealthy; odd wei tail
                increase(env, account, env.eth, is_long, max(dollars // 4, 40), dollars * WAD + dollars % 7)
            elif kind == "partial":
                decrease(env, account, env.eth, is_long, max(size * fraction // BPS, 1))
            else:
                decrease(env, account, env.eth, is_long, size)
            check_aggregates(env, holders)
