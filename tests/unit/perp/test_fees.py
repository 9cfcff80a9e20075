"""Perp borrowing and funding fees, checked against a Python restatement of Perp.vy's rules.

The model below re-derives every number from the market's config, its stored state
(`market_state`), the Vault's pool amount and the block time of the transaction:

- borrowing rate / s = ceil(borrowing_factor * min(ceil(reserved * WAD / pool), WAD) / WAD),
  reserved = ceil((OI long + OI short) * reserve_factor_bps / 10_000); 0 with no reserve;
  pool = the pool amount recorded at the market's last touch (`utilisation_pool_amount`)
- funding: nothing while a side is empty (or both are equal); otherwise the heavier side pays
  pay = min(ceil(funding_factor * |L - S| / (L + S)), max_funding_rate) per USD per second and
  its index falls by pay * dt; the lighter side's index rises by
  min(floor(pay * dt * payer / receiver), pay * dt * 10)
- a position's pending fee = size * (index now - snapshot) / WAD, paid rounded up, received
  rounded down, then to token units the same way

Block times are pinned with `chain.pending_timestamp` (Anvil accepts equal timestamps), so
several transactions can settle at the very same index values.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from perpool import params

WAD = params.WAD
BPS = params.BPS
ETH_PRICE = params.LOCAL_MARKETS["ETH"]
HOUR = 3_600
DAY = 86_400
YEAR = 31_536_000


# ---------------------------------------------------------------- model


def mul_div(x: int, y: int, d: int, round_up: bool) -> int:
    q, r = divmod(x * y, d)
    return q + 1 if round_up and r else q


MAX_RECEIVE_MULTIPLE = 10


def received(paid: int, payer_oi: int, receiver_oi: int) -> int:
    """Per USD of the receiving side, capped at 10x the per-USD payment."""
    return min(mul_div(paid, payer_oi, receiver_oi, False), paid * MAX_RECEIVE_MULTIPLE)


@dataclass
class MarketSnap:
    """The inputs of the rate formulas, read from the chain at one moment."""

    last_update: int
    borrow: int
    funding_long: int
    funding_short: int
    oi_long: int
    oi_short: int
    pool_wad: int
    cfg: object

    @classmethod
    def read(cls, env, market: int) -> "MarketSnap":
        ms = env.reader.market_state(market)
        return cls(
            last_update=ms.last_update,
            borrow=ms.borrow_index,
            funding_long=ms.funding_index_long,
            funding_short=ms.funding_index_short,
            oi_long=ms.open_interest_long_usd,
            oi_short=ms.open_interest_short_usd,
            pool_wad=ms.utilisation_pool_amount * env.scale,
            cfg=env.configurator.configs(market),
        )

    def borrowing_rate(self) -> int:
        reserved = mul_div(self.oi_long + self.oi_short, self.cfg.reserve_factor_bps, BPS, True)
        if reserved == 0:
            return 0
        utilisation = WAD if self.pool_wad == 0 else min(mul_div(reserved, WAD, self.pool_wad, True), WAD)
        return mul_div(self.cfg.borrowing_factor, utilisation, WAD, True)

    def funding_rates(self) -> tuple[int, int]:
        """(long, short) per USD per second, > 0 receives."""
        L, S = self.oi_long, self.oi_short
        if L == 0 or S == 0 or L == S:
            return 0, 0
        pay = min(mul_div(self.cfg.funding_factor, abs(L - S), L + S, True), self.cfg.max_funding_rate)
        if L > S:
            return -pay, received(pay, L, S)
        return received(pay, S, L), -pay

    def indices_at(self, ts: int) -> tuple[int, int, int]:
        """(borrow, funding long, funding short) accrued to block time `ts`."""
        dt = ts - self.last_update
        assert dt >= 0
        borrow, fl, fs = self.borrow, self.funding_long, self.funding_short
        if dt == 0:
            return borrow, fl, fs
        borrow += self.borrowing_rate() * dt
        rl, rs = self.funding_rates()
        if rl < 0:
            paid = -rl * dt
            fl -= paid
            fs += received(paid, self.oi_long, self.oi_short)
        elif rl > 0:
            paid = -rs * dt
            fs -= paid
            fl += received(paid, self.oi_short, self.oi_long)
        return borrow, fl, fs


def pending(pos, is_long: bool, indices: tuple[int, int, int], scale: int) -> dict:
    """Borrowing fee and funding of `pos` (a Perp Position) at `indices`, token units."""
    borrow, fl, fs = indices
    borrow_wad = mul_div(pos.size_usd, borrow - pos.borrow_index, WAD, True)
    delta = (fl if is_long else fs) - pos.funding_index
    if delta >= 0:
        funding_wad = mul_div(pos.size_usd, delta, WAD, False)
        funding = mul_div(funding_wad, 1, scale, False)
    else:
        funding_wad = -mul_div(pos.size_usd, -delta, WAD, True)
        funding = -mul_div(-funding_wad, 1, scale, True)
    return {
        "borrow_wad": borrow_wad,
        "borrow_fee": mul_div(borrow_wad, 1, scale, True),
        "funding_wad": funding_wad,
        "funding": funding,  # > 0 received, < 0 paid
    }


# ---------------------------------------------------------------- helpers




@pytest.fixture(scope="module")
def whale(env, accounts):
    env.fund(accounts[9])
    return accounts[9]


@pytest.fixture(scope="module")
def griefer(env, accounts):
    """An attacker who pays a little to freeze a market."""
    env.fund(accounts[5], 100)
    return accounts[5]


def head_ts(env) -> int:
    return env.chain.blocks.head.timestamp


def pin(env, ts: int) -> None:
    """The next transaction's block time."""
    env.chain.pending_timestamp = ts


def advance(env, seconds: int) -> int:
    """Move time on by `seconds`, push fresh prices (unchanged) for both markets at that
    time, and pin the next transaction to the same block time, which is returned."""
    ts = head_ts(env) + seconds
    pin(env, ts)
    markets = [env.eth, env.btc]
    prices = [env.oracle.price_data(m).price for m in markets]
    env.oracle.set_prices(markets, prices, ts, sender=env.keeper)
    pin(env, ts)
    return ts


def open_position(env, account, is_long: bool, collateral_usd, size_usd: int, market=None):
    market = env.eth if market is None else market
    acceptable = 2**256 - 1 if is_long else 0
    return env.perp.increase_position(
        market, is_long, env.usd(collateral_usd), size_usd, acceptable, sender=account
    )


def close_position(env, account, is_long: bool, market=None):
    market = env.eth if market is None else market
    size = env.perp.get_position(account, market, is_long).size_usd
    acceptable = 0 if is_long else 2**256 - 1
    return env.perp.decrease_position(market, is_long, 0, size, acceptable, account, sender=account)


def add_collateral(env, account, is_long: bool, amount: int, market=None):
    """A touch that settles pending fees without changing the size."""
    market = env.eth if market is None else market
    return env.perp.increase_position(market, is_long, amount, 0, 0, sender=account)


def update_event(env, tx):
    [ev] = tx.decode_logs(env.perp.PositionUpdate)
    return ev


def indices_of(ms) -> tuple[int, int, int]:
    return ms.borrow_index, ms.funding_index_long, ms.funding_index_short


# ---------------------------------------------------------------- borrowing


@pytest.mark.parametrize("is_long", [True, False], ids=["long", "short"])
def test_borrowing_fee__one_day_on_one_side__equals_size_times_rate_times_elapsed(env, funded_trader, is_long):
    perp, vault = env.perp, env.vault
    size = 100_000 * WAD
    open_position(env, funded_trader, is_long, 10_000, size)
    pos = perp.get_position(funded_trader, env.eth, is_long)
    snap = MarketSnap.read(env, env.eth)
    rate = snap.borrowing_rate()
    assert rate > 0
    assert env.reader.rates(env.eth).borrowing_rate_per_second == rate
    pool = vault.pool_amount()

    ts = advance(env, DAY)
    tx = add_collateral(env, funded_trader, is_long, env.usd(1))

    assert tx.timestamp == ts
    ms = env.reader.market_state(env.eth)
    assert ms.last_update == ts
    assert ms.borrow_index == snap.borrow + rate * (ts - snap.last_update)
    fee_wad = mul_div(size, ms.borrow_index - pos.borrow_index, WAD, True)
    fee = mul_div(fee_wad, 1, env.scale, True)
    assert fee > 0
    ev = update_event(env, tx)
    assert (ev.borrow_fee, ev.position_fee, ev.funding) == (fee, 0, 0)
    after = perp.get_position(funded_trader, env.eth, is_long)
    assert after.collateral == pos.collateral + env.usd(1) - fee
    assert after.borrow_index == ms.borrow_index
    assert vault.pool_amount() == pool + fee  # the fee goes to the pool


def test_borrowing_fee__lp_deposit_just_before_the_touch__does_not_cut_fee_already_accrued(
    env, funded_trader, lp
):
    """Each interval is charged at the rate in force when it began: a deposit at the end of
    a 30-day holding must not lower the rate of the 30 days before it (the Vault cannot
    accrue Perp's indices, so the rate uses the pool amount recorded at the last touch)."""
    perp = env.perp
    size = 400_000 * WAD
    open_position(env, funded_trader, True, 40_000, size)
    pos = perp.get_position(funded_trader, env.eth, True)
    snap = MarketSnap.read(env, env.eth)
    rate_before = snap.borrowing_rate()

    ts = advance(env, 30 * DAY)
    pool = env.vault.pool_amount()
    env.vault.deposit(env.usd(1_000_000), 0, lp, sender=lp)  # doubles the pool amount
    assert env.vault.pool_amount() > pool
    assert MarketSnap.read(env, env.eth).borrowing_rate() == rate_before  # still in force
    pin(env, ts)  # the touch in the same second as the deposit
    tx = close_position(env, funded_trader, True)

    assert tx.timestamp == ts
    expected = pending(pos, True, snap.indices_at(ts), env.scale)["borrow_fee"]
    assert update_event(env, tx).borrow_fee == expected
    assert env.reader.market_state(env.eth).borrow_index == snap.borrow + rate_before * (ts - snap.last_update)


@pytest.mark.parametrize(
    ("is_long", "size"), [(False, 1), (True, WAD)], ids=["short-1wei", "long-1usd"]
)
def test_borrowing_fee__tiny_position_held_a_year__is_nonzero(env, funded_trader, is_long, size):
    perp = env.perp
    open_position(env, funded_trader, is_long, 11, size)
    pos = perp.get_position(funded_trader, env.eth, is_long)
    snap = MarketSnap.read(env, env.eth)
    assert snap.borrowing_rate() > 0  # rounded up: a tiny utilisation still costs

    ts = advance(env, YEAR)
    tx = close_position(env, funded_trader, is_long)

    borrow, _, _ = snap.indices_at(ts)
    expected = pending(pos, is_long, (borrow, 0, 0), env.scale)
    assert expected["borrow_wad"] < env.scale  # less than one token unit before rounding up
    ev = update_event(env, tx)
    assert ev.borrow_fee == expected["borrow_fee"] == 1
    assert env.reader.market_state(env.eth).borrow_index == borrow


# ---------------------------------------------------------------- funding


@pytest.mark.parametrize("heavy_long", [True, False], ids=["longs-heavier", "shorts-heavier"])
def test_funding__one_day_of_skew__heavier_side_pays_lighter_side_receives_exact_amounts(
    env, funded_trader, counterparty, heavy_long
):
    perp = env.perp
    heavy, light = funded_trader, counterparty
    open_position(env, heavy, heavy_long, 20_000, 200_000 * WAD)
    open_position(env, light, not heavy_long, 10_000, 100_000 * WAD + 12_345)  # odd size
    pos_heavy = perp.get_position(heavy, env.eth, heavy_long)
    pos_light = perp.get_position(light, env.eth, not heavy_long)
    snap = MarketSnap.read(env, env.eth)
    rl, rs = snap.funding_rates()
    pay, receive = (-rl, rs) if heavy_long else (-rs, rl)
    assert pay > 0 and receive > pay  # the lighter side spreads the same money over less size
    rates = env.reader.rates(env.eth)
    assert (rates.funding_rate_long_per_second, rates.funding_rate_short_per_second) == (rl, rs)

    ts = advance(env, DAY)
    tx_heavy = add_collateral(env, heavy, heavy_long, env.usd(1))
    pin(env, ts)
    tx_light = add_collateral(env, light, not heavy_long, env.usd(1))

    assert tx_heavy.timestamp == tx_light.timestamp == ts
    indices = snap.indices_at(ts)
    assert indices_of(env.reader.market_state(env.eth)) == indices
    paid = pending(pos_heavy, heavy_long, indices, env.scale)
    received = pending(pos_light, not heavy_long, indices, env.scale)
    assert paid["funding"] < 0 < received["funding"]
    ev_heavy, ev_light = update_event(env, tx_heavy), update_event(env, tx_light)
    assert ev_heavy.funding == paid["funding"]
    assert ev_light.funding == received["funding"]
    assert received["funding"] <= -paid["funding"]  # never more received than paid
    assert ev_heavy.borrow_fee == paid["borrow_fee"]
    assert ev_light.borrow_fee == received["borrow_fee"]
    after_light = perp.get_position(light, env.eth, not heavy_long)
    assert after_light.collateral == (
        pos_light.collateral + env.usd(1) + received["funding"] - received["borrow_fee"]
    )


@pytest.mark.parametrize("is_long", [True, False], ids=["only-longs", "only-shorts"])
def test_funding__one_side_empty__nothing_accrues_while_borrowing_does(env, funded_trader, counterparty, is_long):
    perp = env.perp
    open_position(env, funded_trader, is_long, 10_000, 150_000 * WAD)
    open_position(env, counterparty, is_long, 5_000, 30_000 * WAD)
    before = env.reader.market_state(env.eth)
    rates = env.reader.rates(env.eth)
    assert rates.funding_rate_long_per_second == rates.funding_rate_short_per_second == 0
    assert rates.funding_rate_long_per_year == rates.funding_rate_short_per_year == 0
    assert rates.borrowing_rate_per_second > 0

    advance(env, 7 * DAY)
    now = perp.current_indices(env.eth)
    assert (now.funding_long, now.funding_short) == (before.funding_index_long, before.funding_index_short)
    assert now.borrow > before.borrow_index
    tx = add_collateral(env, funded_trader, is_long, env.usd(1))

    assert update_event(env, tx).funding == 0
    after = env.reader.market_state(env.eth)
    assert (after.funding_index_long, after.funding_index_short) == (
        before.funding_index_long, before.funding_index_short
    )
    assert after.borrow_index > before.borrow_index


def test_funding__balanced_sides__nothing_accrues(env, funded_trader, counterparty):
    perp = env.perp
    size = 80_000 * WAD
    open_position(env, funded_trader, True, 10_000, size)
    open_position(env, counterparty, False, 10_000, size)
    before = env.reader.market_state(env.eth)
    assert before.open_interest_long_usd == before.open_interest_short_usd

    advance(env, DAY)
    tx = add_collateral(env, funded_trader, True, env.usd(1))

    assert update_event(env, tx).funding == 0
    after = env.reader.market_state(env.eth)
    assert (after.funding_index_long, after.funding_index_short) == (
        before.funding_index_long, before.funding_index_short
    )


def test_funding__several_positions_both_sides__paid_covers_received_and_dust_stays_in_pool(
    env, funded_trader, counterparty, hedger, whale
):
    perp, vault = env.perp, env.vault
    # (account, is_long, collateral $, size WAD USD), opened one hour apart so every
    # position has its own index snapshot; odd sizes so every division rounds
    book = [
        (funded_trader, True, 15_000, 150_000 * WAD),
        (whale, False, 9_000, 90_000 * WAD + 777_777_777_777),
        (counterparty, True, 7_000, 70_123 * WAD + 1),
        (hedger, False, 4_000, 41_234 * WAD + 567 * 10**15),
        (hedger, True, 3_000, 33_333 * WAD + 333_333_333_333_333_333),
    ]
    for account, is_long, collateral, size in book:
        advance(env, HOUR)
        open_position(env, account, is_long, collateral, size)
    snapshots = {(a.address, l): perp.get_position(a, env.eth, l) for a, l, _, _ in book}
    assert len({s.funding_index for s in snapshots.values()}) > 2  # distinct snapshots
    snap = MarketSnap.read(env, env.eth)
    pool = vault.pool_amount()

    ts = advance(env, 2 * DAY)
    indices = snap.indices_at(ts)
    events = []
    for account, is_long, _, _ in book:
        pin(env, ts)  # every close settles at the same index values
        tx = close_position(env, account, is_long)
        assert tx.timestamp == ts
        events.append((account, is_long, update_event(env, tx)))

    paid = received = fees = pnl = 0
    for account, is_long, ev in events:
        expected = pending(snapshots[(account.address, is_long)], is_long, indices, env.scale)
        assert ev.funding == expected["funding"]
        assert ev.borrow_fee == expected["borrow_fee"]
        assert ev.bad_debt == 0
        paid += max(-ev.funding, 0)
        received += max(ev.funding, 0)
        fees += ev.borrow_fee + ev.position_fee
        pnl += ev.pnl
    assert paid > 0 and received > 0
    dust = paid - received
    # each payer rounds up at most one unit, each receiver down at most one, and the
    # receiving index (rounded down) loses less than one more unit in total
    assert 0 <= dust <= len(book) + 1
    # the pool keeps fees, trader losses and the dust
    assert vault.pool_amount() == pool + fees - pnl + dust
    assert vault.collateral_amount() == 0
    assert env.token.balanceOf(vault) == vault.pool_amount() + vault.insurance_amount()


def test_funding__owed_beyond_collateral__payer_close_is_bad_debt_receiver_paid_in_full(
    env, funded_trader, counterparty
):
    perp, vault, token = env.perp, env.vault, env.token
    payer, receiver = funded_trader, counterparty
    open_position(env, payer, True, 10_000, 450_000 * WAD)  # 45x, the heavy side
    open_position(env, receiver, False, 1_000, 10_000 * WAD)
    pos_payer = perp.get_position(payer, env.eth, True)
    pos_receiver = perp.get_position(receiver, env.eth, False)
    snap = MarketSnap.read(env, env.eth)
    pool = vault.pool_amount()

    ts = advance(env, 30 * DAY)
    indices = snap.indices_at(ts)
    owed = pending(pos_payer, True, indices, env.scale)
    assert -owed["funding"] > pos_payer.collateral  # funding alone exceeds the collateral
    payer_tokens = token.balanceOf(payer)
    tx = close_position(env, payer, True)

    ev = update_event(env, tx)
    assert ev.amount_out == 0 and token.balanceOf(payer) == payer_tokens  # the payer gets nothing
    assert ev.funding == owed["funding"]
    assert ev.borrow_fee == owed["borrow_fee"]
    left = pos_payer.collateral + ev.pnl + ev.funding - ev.borrow_fee - ev.position_fee
    assert left < 0
    assert ev.bad_debt == -left
    assert vault.pool_amount() == pool + pos_payer.collateral  # the pool keeps all it can

    # the payer is gone, so funding stopped; the receiver is credited the full index delta
    pin(env, ts)
    pool = vault.pool_amount()
    receiver_tokens = token.balanceOf(receiver)
    tx = close_position(env, receiver, False)

    ev = update_event(env, tx)
    credit = pending(pos_receiver, False, indices, env.scale)
    assert ev.funding == credit["funding"] > 0
    assert ev.bad_debt == 0
    expected_out = pos_receiver.collateral + ev.pnl + ev.funding - ev.borrow_fee - ev.position_fee
    assert ev.amount_out == expected_out
    assert token.balanceOf(receiver) == receiver_tokens + expected_out
    assert vault.pool_amount() == pool - (expected_out - pos_receiver.collateral)
    assert vault.collateral_amount() == 0


def test_funding__one_cent_short_against_large_longs_for_a_week__longs_can_still_close(
    env, funded_trader, griefer
):
    """The lighter side's index grows by paid x payer_OI / receiver_OI per second: against a
    one-cent short it outgrows the 80-bit index bound within a week. Closing must stay
    available (Perp's @custom:kill: "closing stays available") and pay the funding formula.
    Known to fail today with "perp: index overflow"."""
    perp = env.perp
    open_position(env, funded_trader, True, 40_000, 400_000 * WAD)
    open_position(env, griefer, False, 11, 10**16)  # $0.01 of size, $11 of collateral
    pos = perp.get_position(funded_trader, env.eth, True)
    snap = MarketSnap.read(env, env.eth)

    ts = advance(env, 7 * DAY)
    indices = snap.indices_at(ts)
    tx = close_position(env, funded_trader, True)

    ev = update_event(env, tx)
    assert ev.funding == pending(pos, True, indices, env.scale)["funding"] < 0
    assert perp.pool_value(False) > 0


# ---------------------------------------------------------------- views and indices


def test_rates__skewed_market__per_second_hour_year_match_the_formulas(env, funded_trader, counterparty):
    perp = env.perp
    open_position(env, funded_trader, False, 30_000, 300_000 * WAD)
    open_position(env, counterparty, True, 12_000, 120_000 * WAD)
    snap = MarketSnap.read(env, env.eth)
    borrow = snap.borrowing_rate()
    rl, rs = snap.funding_rates()
    assert rl > 0 > rs  # shorts heavier: shorts pay, longs receive

    r = env.reader.rates(env.eth)

    assert r.borrowing_rate_per_second == borrow
    assert r.borrowing_rate_per_hour == borrow * HOUR
    assert r.borrowing_rate_per_year == borrow * YEAR
    assert (r.funding_rate_long_per_second, r.funding_rate_short_per_second) == (rl, rs)
    assert (r.funding_rate_long_per_hour, r.funding_rate_short_per_hour) == (rl * HOUR, rs * HOUR)
    assert (r.funding_rate_long_per_year, r.funding_rate_short_per_year) == (rl * YEAR, rs * YEAR)


def test_rates__skew_above_cap__funding_paid_at_max_rate_received_scaled_by_oi(
    env, funded_trader, counterparty, deployer
):
    perp = env.perp
    cfg = dict(params.MARKET_CONFIG)
    cfg["max_funding_rate"] = cfg["funding_factor"] // 4  # binds above 25 % skew
    env.configurator.set_market_config(env.eth, cfg, sender=deployer)
    long_size, short_size = 400_000 * WAD, 20 * WAD
    open_position(env, funded_trader, True, 40_000, long_size)
    open_position(env, counterparty, False, 20, short_size)
    uncapped = mul_div(cfg["funding_factor"], long_size - short_size, long_size + short_size, True)
    assert uncapped > cfg["max_funding_rate"]

    r = env.reader.rates(env.eth)

    assert r.funding_rate_long_per_second == -cfg["max_funding_rate"]
    # spread over the tiny short side it would be 20,000x; receivers get at most 10x
    assert mul_div(cfg["max_funding_rate"], long_size, short_size, False) > 10 * cfg["max_funding_rate"]
    assert r.funding_rate_short_per_second == MAX_RECEIVE_MULTIPLE * cfg["max_funding_rate"]
    assert (r.funding_rate_long_per_second, r.funding_rate_short_per_second) == (
        MarketSnap.read(env, env.eth).funding_rates()
    )


def test_current_indices__after_time_jump__equal_model_and_the_indices_of_the_next_touch(
    env, funded_trader, counterparty
):
    perp = env.perp
    open_position(env, funded_trader, True, 25_000, 250_000 * WAD)
    open_position(env, counterparty, False, 9_000, 90_000 * WAD)
    snap = MarketSnap.read(env, env.eth)

    env.chain.mine(deltatime=5 * HOUR)
    head = head_ts(env)
    view = perp.current_indices(env.eth)
    expected = snap.indices_at(head)
    assert (view.borrow, view.funding_long, view.funding_short) == expected
    assert view.borrow > snap.borrow and view.funding_long < snap.funding_long < view.funding_short
    # stored state has not moved yet: indices accrue lazily
    assert indices_of(env.reader.market_state(env.eth)) == (snap.borrow, snap.funding_long, snap.funding_short)

    pin(env, head)
    env.push(env.eth, ETH_PRICE)  # the touch needs a fresh price; pushing does not accrue
    assert indices_of(env.reader.market_state(env.eth)) == (snap.borrow, snap.funding_long, snap.funding_short)
    pin(env, head)
    tx = add_collateral(env, counterparty, False, env.usd(1))

    ms = env.reader.market_state(env.eth)
    assert ms.last_update == head
    assert indices_of(ms) == (view.borrow, view.funding_long, view.funding_short)
    # the touch's event carries the touched side's indices, the position's new snapshots
    [log] = tx.decode_logs(perp.PositionUpdate)
    assert (log.borrow_index, log.funding_index) == (expected[0], expected[2])


def test_borrow_index__through_opens_closes_idle_and_config_changes__never_decreases(
    env, funded_trader, counterparty, deployer, lp
):
    perp = env.perp
    seen: list[int] = []

    def check():
        stored = env.reader.market_state(env.eth).borrow_index
        now = perp.current_indices(env.eth).borrow
        assert now >= stored
        if seen:
            assert stored >= seen[-1]
        seen.append(now)

    check()
    open_position(env, funded_trader, True, 20_000, 200_000 * WAD)
    check()
    advance(env, DAY)
    check()
    open_position(env, counterparty, False, 5_000, 50_000 * WAD)
    check()
    advance(env, HOUR)
    perp.decrease_position(env.eth, True, 0, 120_000 * WAD, 0, funded_trader, sender=funded_trader)
    check()
    advance(env, DAY)
    env.vault.deposit(env.usd(500_000), 0, lp, sender=lp)  # more pool: lower rate
    check()
    advance(env, DAY)
    cfg = dict(params.MARKET_CONFIG, borrowing_factor=0)
    env.configurator.set_market_config(env.eth, cfg, sender=deployer)  # accrues, then the rate is zero
    check()
    assert env.reader.rates(env.eth).borrowing_rate_per_second == 0
    advance(env, DAY)
    check()
    assert seen[-1] == seen[-2]  # a zero rate leaves the index flat
    env.configurator.set_market_config(env.eth, dict(params.MARKET_CONFIG), sender=deployer)
    close_position(env, funded_trader, True)
    close_position(env, counterparty, False)
    check()
    idle = env.reader.market_state(env.eth).borrow_index
    advance(env, 30 * DAY)  # no open interest: no reserve, no rate
    check()
    assert perp.current_indices(env.eth).borrow == idle
    open_position(env, counterparty, False, 1_000, 10_000 * WAD)
    check()
    advance(env, DAY)
    check()
    assert seen[-1] > idle
    assert seen == sorted(seen)
