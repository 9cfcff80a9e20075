"""A Python reference model of Perp's position arithmetic, and small chain helpers.

The model restates the formulas of contracts/Perp.vy (its glossary and the NatSpec of
`increase_position` / `decrease_position`) with Python integers and the same rounding, so
the tests derive every expected number instead of hard-coding it:

- position fee      = ceil(ceil(size_delta * fee_bps / 10_000) / token_scale)   token units
- size_tokens       = size_usd * WAD / price, down for longs, up for shorts
- PnL (WAD)         long  = floor(tokens * price / WAD) - size
                    short = size - ceil(tokens * price / WAD)
- realised PnL      profit floor(pnl / token_scale), loss -ceil(-pnl / token_scale)
- partial close     tokens_closed = tokens * size_delta / size, down for longs, up for shorts
- borrowing fee     ceil(ceil(size * (index_now - snapshot) / WAD) / token_scale)
- funding           received floor, paid ceil (both per USD of size, WAD indices)
- payout (decrease) settle = pnl + funding received - borrow - position fee - funding paid;
                    full close pays max(collateral + settle, 0), the rest is bad debt;
                    a partial one pays collateral_delta (+ settle when settle >= 0), a
                    negative settle comes out of the remaining collateral.
- buckets           increase: pool += fees - funding received, collateral += in - that;
                    decrease: collateral += new - old collateral, pool += -out - that.
"""

from __future__ import annotations

import ape

from dataclasses import dataclass, replace
from typing import Any, Mapping

from chain_isolation import isolated  # noqa: F401 (re-exported for the perp suites)
from perpool import params
from perpool.deploy import deploy_protocol
from perpool.prices import push_stepped, steps

import pytest

WAD = 10**18
BPS = 10_000
MAX_UINT = 2**256 - 1
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


# ---------------------------------------------------------------- the deployed protocol

LP_DEPOSIT_USD = 1_000_000  # whole dollars the LP seeds the pool with
TRADER_FUNDS_USD = 1_000_000
NO_CUT_RISK: dict[str, object] = {**params.RISK_CONFIG, "insurance_cut_bps": 0}


@dataclass
class Env:
    """One deployed protocol plus the helpers tests need."""

    token: Any
    oracle: Any
    vault: Any
    perp: Any
    configurator: Any
    risk: Any  # RiskEngine
    reader: Any  # PerpReader
    orders: Any  # OrderBook
    markets: dict[str, int]
    keeper: Any
    chain: Any
    unit: int  # token units per whole dollar
    scale: int  # WAD per token unit

    @property
    def eth(self) -> int:
        return self.markets["ETH"]

    @property
    def btc(self) -> int:
        return self.markets["BTC"]

    def usd(self, dollars: int | float) -> int:
        """Whole or fractional dollars in token units."""
        return int(dollars * self.unit)

    def push(self, market: int, price: int) -> Any:
        """Push `price` (WAD) for `market`, observed now; a move beyond the Oracle's jump
        bound is stepped through it, one push a second, the last observed now (or later,
        when the stored observation leaves no room): perpool.prices.push_stepped."""
        now = self.chain.pending_timestamp
        if len(steps(self.oracle.price_data(market).price, price, self.oracle.config().max_jump_bps)) == 1:
            return self.oracle.set_prices([market], [price], now, sender=self.keeper)
        return push_stepped(self.oracle, self.chain, self.keeper, {market: price}, at=now)

    def fund(self, account: Any, dollars: int = TRADER_FUNDS_USD) -> None:
        self.token.mint(account, self.usd(dollars), sender=account)
        self.token.approve(self.vault.address, 2**256 - 1, sender=account)

    @classmethod
    def of(cls, p: Any, keeper: Any, chain: Any, decimals: int = 6) -> "Env":
        """The Env of a `deploy_protocol` result."""
        return cls(
            token=p.token, oracle=p.oracle, vault=p.vault, perp=p.perp, configurator=p.configurator,
            risk=p.risk, reader=p.reader, orders=p.orders, markets=p.markets,
            keeper=keeper, chain=chain, unit=10**decimals, scale=10 ** (18 - decimals),
        )


def build_env(
    project,
    deployer,
    keeper,
    lp,
    chain,
    decimals: int,
    risk_config: dict[str, object] | None = None,
    token: Any = None,
    direct_fills: bool = True,
) -> Env:
    """Deploy a protocol with `decimals` collateral (or `token`) and seed the pool with the
    LP's deposit."""
    token = token or deployer.deploy(project.TestToken, "Test USD", "tUSD", decimals)
    p = deploy_protocol(
        project,
        deployer,
        token,
        risk_config=risk_config or NO_CUT_RISK,
        updaters=(keeper,),
        chain=chain,
        direct_fills=direct_fills,
    )
    env = Env.of(p, keeper, chain, decimals)
    env.fund(lp, LP_DEPOSIT_USD * 2)
    p.vault.deposit(env.usd(LP_DEPOSIT_USD), 0, lp, sender=lp)
    return env


# ---------------------------------------------------------------- rounding


def ceil_div(x: int, d: int) -> int:
    return -(-x // d)


def mul_div(x: int, y: int, d: int, round_up: bool = False) -> int:
    assert x >= 0 and y >= 0 and d > 0
    return ceil_div(x * y, d) if round_up else x * y // d


def bps_of(x: int, bps: int, round_up: bool) -> int:
    return mul_div(x, bps, BPS, round_up)


def to_tokens(wad: int, scale: int, round_up: bool) -> int:
    return mul_div(wad, 1, scale, round_up)


# ---------------------------------------------------------------- prices


def spread_price(price: int, spread_bps: int, maximize: bool) -> int:
    """The Oracle's min/max read: max rounds up, min rounds down."""
    if spread_bps == 0:
        return price
    if maximize:
        return bps_of(price, BPS + spread_bps, True)
    return bps_of(price, BPS - spread_bps, False)


def open_price(min_price: int, max_price: int, is_long: bool) -> int:
    """Longs open at the max price, shorts at the min."""
    return max_price if is_long else min_price


def close_price(min_price: int, max_price: int, is_long: bool) -> int:
    """Longs close at the min price, shorts at the max."""
    return min_price if is_long else max_price


# ---------------------------------------------------------------- formulas


def position_fee(size_delta: int, fee_bps: int, scale: int) -> int:
    return to_tokens(bps_of(size_delta, fee_bps, True), scale, True)


def tokens_for(size_usd: int, price: int, is_long: bool) -> int:
    return mul_div(size_usd, WAD, price, not is_long)


def pnl_wad(size_usd: int, size_tokens: int, price: int, is_long: bool) -> int:
    if is_long:
        return mul_div(size_tokens, price, WAD, False) - size_usd
    return size_usd - mul_div(size_tokens, price, WAD, True)


def wad_to_signed_tokens(wad: int, scale: int) -> int:
    """Gains round down, losses round up (away from zero)."""
    if wad >= 0:
        return to_tokens(wad, scale, False)
    return -to_tokens(-wad, scale, True)


def pnl_tokens(size_usd: int, size_tokens: int, price: int, is_long: bool, scale: int) -> int:
    return wad_to_signed_tokens(pnl_wad(size_usd, size_tokens, price, is_long), scale)


def tokens_closed(size_usd: int, size_tokens: int, size_delta: int, is_long: bool) -> int:
    if size_delta == size_usd:
        return size_tokens
    return mul_div(size_tokens, size_delta, size_usd, not is_long)


def entry_price(size_usd: int, size_tokens: int, is_long: bool) -> int:
    return mul_div(size_usd, WAD, size_tokens, is_long)


# ---------------------------------------------------------------- positions


@dataclass(frozen=True)
class Position:
    size_usd: int = 0
    size_tokens: int = 0
    collateral: int = 0
    borrow_index: int = 0
    funding_index: int = 0

    @classmethod
    def of(cls, raw: Any) -> "Position":
        """From `perp.get_position(...)` or a PositionUpdate log."""
        return cls(
            size_usd=raw.size_usd,
            size_tokens=raw.size_tokens,
            collateral=raw.collateral,
            borrow_index=raw.borrow_index,
            funding_index=raw.funding_index,
        )


@dataclass(frozen=True)
class Indices:
    borrow: int = 0
    funding_long: int = 0
    funding_short: int = 0

    def funding(self, is_long: bool) -> int:
        return self.funding_long if is_long else self.funding_short

    @classmethod
    def of_state(cls, state: Any) -> "Indices":
        """From `env.reader.market_state(m)` (stored indices) or `perp.current_indices(m)`."""
        if hasattr(state, "borrow_index"):
            return cls(state.borrow_index, state.funding_index_long, state.funding_index_short)
        return cls(state.borrow, state.funding_long, state.funding_short)


def borrow_fee_wad(pos: Position, idx: Indices) -> int:
    return mul_div(pos.size_usd, idx.borrow - pos.borrow_index, WAD, True)


def funding_wad(pos: Position, is_long: bool, idx: Indices) -> int:
    delta = idx.funding(is_long) - pos.funding_index
    if delta >= 0:
        return mul_div(pos.size_usd, delta, WAD, False)
    return -mul_div(pos.size_usd, -delta, WAD, True)


def pending(pos: Position, is_long: bool, idx: Indices, scale: int) -> tuple[int, int, int]:
    """(borrow fee, funding paid, funding received), token units."""
    if pos.size_usd == 0:
        return 0, 0, 0
    borrow = to_tokens(borrow_fee_wad(pos, idx), scale, True)
    funding = funding_wad(pos, is_long, idx)
    if funding >= 0:
        return borrow, 0, to_tokens(funding, scale, False)
    return borrow, to_tokens(-funding, scale, True), 0


class Refused(Exception):
    """The model's prediction that the contract reverts with `reason`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Change:
    """The predicted outcome of one increase or decrease (token units unless named)."""

    position: Position  # after the change (all zero when closed)
    price: int  # fill price, WAD
    size_delta: int  # WAD USD, signed
    collateral_in: int
    amount_out: int
    position_fee: int
    borrow_fee: int
    funding: int  # > 0 received
    pnl: int
    bad_debt: int
    pool_delta: int  # Vault buckets
    collateral_delta: int


def increase(
    pos: Position,
    is_long: bool,
    collateral_delta: int,
    size_delta: int,
    price: int,
    idx: Indices,
    fee_bps: int,
    scale: int,
) -> Change:
    borrow, funding_paid, funding_received = pending(pos, is_long, idx, scale)
    fee = position_fee(size_delta, fee_bps, scale)
    gross = pos.collateral + collateral_delta + funding_received
    owed = borrow + fee + funding_paid
    if gross < owed:
        raise Refused("perp: fees exceed collateral")
    new = Position(
        size_usd=pos.size_usd + size_delta,
        size_tokens=pos.size_tokens + (tokens_for(size_delta, price, is_long) if size_delta else 0),
        collateral=gross - owed,
        borrow_index=idx.borrow,
        funding_index=idx.funding(is_long),
    )
    to_pool = owed - funding_received
    return Change(
        position=new,
        price=price,
        size_delta=size_delta,
        collateral_in=collateral_delta,
        amount_out=0,
        position_fee=fee,
        borrow_fee=borrow,
        funding=funding_received - funding_paid,
        pnl=0,
        bad_debt=0,
        pool_delta=to_pool,
        collateral_delta=collateral_delta - to_pool,
    )


def decrease(
    pos: Position,
    is_long: bool,
    collateral_delta: int,
    size_delta: int,
    price: int,
    idx: Indices,
    fee_bps: int,
    scale: int,
) -> Change:
    if pos.size_usd == 0:
        raise Refused("perp: no position")
    if size_delta > pos.size_usd:
        raise Refused("perp: size exceeds position")
    closing = size_delta == pos.size_usd
    borrow, funding_paid, funding_received = pending(pos, is_long, idx, scale)
    fee = position_fee(size_delta, fee_bps, scale)
    closed = tokens_closed(pos.size_usd, pos.size_tokens, size_delta, is_long)
    pnl = pnl_tokens(size_delta, closed, price, is_long, scale)
    settle = pnl + funding_received - borrow - fee - funding_paid
    amount_out = bad_debt = 0
    new = Position()
    if closing:
        left = pos.collateral + settle
        if left > 0:
            amount_out = left
        else:
            bad_debt = -left
    else:
        if collateral_delta > pos.collateral:
            raise Refused("perp: insufficient collateral")
        remaining = pos.collateral - collateral_delta
        if settle >= 0:
            amount_out = collateral_delta + settle
        else:
            remaining += settle
            if remaining < 0:
                raise Refused("perp: insufficient collateral")
            amount_out = collateral_delta
        new = Position(
            size_usd=pos.size_usd - size_delta,
            size_tokens=pos.size_tokens - closed,
            collateral=remaining,
            borrow_index=idx.borrow,
            funding_index=idx.funding(is_long),
        )
    collateral_change = new.collateral - pos.collateral
    return Change(
        position=new,
        price=price,
        size_delta=-size_delta,
        collateral_in=0,
        amount_out=amount_out,
        position_fee=fee,
        borrow_fee=borrow,
        funding=funding_received - funding_paid,
        pnl=pnl,
        bad_debt=bad_debt,
        pool_delta=-amount_out - collateral_change,
        collateral_delta=collateral_change,
    )


def health(
    pos: Position, is_long: bool, price: int, idx: Indices, cfg: Mapping[str, int], scale: int
) -> tuple[int, int]:
    """(remaining collateral, maintenance margin), WAD USD."""
    close_fee = bps_of(pos.size_usd, cfg["position_fee_bps"], True)
    remaining = (
        pos.collateral * scale
        + pnl_wad(pos.size_usd, pos.size_tokens, price, is_long)
        + funding_wad(pos, is_long, idx)
        - borrow_fee_wad(pos, idx)
        - close_fee
    )
    maintenance = max(
        bps_of(pos.size_usd, cfg["maintenance_margin_bps"], True), cfg["min_maintenance_usd"]
    )
    return remaining, maintenance


def check_position(
    pos: Position, is_long: bool, price: int, idx: Indices, cfg: Mapping[str, int], scale: int
) -> None:
    """Perp._check_position: raises Refused with the contract's reason."""
    collateral_wad = pos.collateral * scale
    if collateral_wad < cfg["min_collateral_usd"]:
        raise Refused("perp: collateral below min")
    if pos.size_usd * BPS > cfg["max_leverage_bps"] * collateral_wad:
        raise Refused("perp: leverage too high")
    remaining, maintenance = health(pos, is_long, price, idx, cfg, scale)
    if remaining < maintenance:
        raise Refused("perp: would be liquidatable")


def predict_increase(
    pos: Position,
    is_long: bool,
    collateral_delta: int,
    size_delta: int,
    price: int,
    idx: Indices,
    cfg: Mapping[str, int],
    scale: int,
) -> Change:
    """increase() followed by the position checks (caps not included), which a
    collateral-only add skips, as the contract does."""
    fee_bps = cfg["position_fee_bps"]
    change = increase(pos, is_long, collateral_delta, size_delta, price, idx, fee_bps, scale)
    if size_delta != 0:
        check_position(change.position, is_long, price, idx, cfg, scale)
    return change


def predict_decrease(
    pos: Position,
    is_long: bool,
    collateral_delta: int,
    size_delta: int,
    price: int,
    idx: Indices,
    cfg: Mapping[str, int],
    scale: int,
) -> Change:
    fee_bps = cfg["position_fee_bps"]
    change = decrease(pos, is_long, collateral_delta, size_delta, price, idx, fee_bps, scale)
    if size_delta != pos.size_usd:
        check_position(change.position, is_long, price, idx, cfg, scale)
    return change


def largest(ok, lo: int, hi: int) -> int:
    """The largest x in [lo, hi] with ok(x), for ok true at lo and monotone (true then false)."""
    assert ok(lo)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def refused(fn, *args) -> str | None:
    """The model's refusal reason for fn(*args), or None when it goes through."""
    try:
        fn(*args)
    except Refused as e:
        return e.reason
    return None


# ---------------------------------------------------------------- chain helpers


@pytest.fixture(scope="module", autouse=True)
def fast_reverts():
    """Import into a test module to skip Ape's Vyper source traceback on reverts.

    For every revert Ape maps the whole execution trace back to Vyper source lines, which
    takes seconds for a revert deep inside Perp (after the position is written). The revert
    reason, which is all `ape.reverts("...")` compares, comes from the node and is kept.
    """
    from ape.types.trace import SourceTraceback
    from ape_vyper.compiler.api import VyperCompiler

    original = VyperCompiler.trace_source
    VyperCompiler.trace_source = lambda self, *args, **kwargs: SourceTraceback.model_validate([])
    yield
    VyperCompiler.trace_source = original


def config_of(configurator: Any, market: int) -> dict[str, int]:
    c = configurator.configs(market)
    return {
        name: getattr(c, name)
        for name in (
            "max_leverage_bps",
            "position_fee_bps",
            "min_collateral_usd",
            "max_open_interest_usd",
            "reserve_factor_bps",
            "borrowing_factor",
            "funding_factor",
            "max_funding_rate",
            "maintenance_margin_bps",
            "min_maintenance_usd",
        )
    }


def risk_of(configurator: Any, market: int) -> dict[str, Any]:
    """A market's RiskConfig as the Configurator records it, as a dict (tiers as lists)."""
    r = configurator.risk_configs(market)
    return {k: list(getattr(r, k)) if k.startswith("tier") else getattr(r, k) for k in params.RISK_CONFIG}


def left_of(pos: Position, is_long: bool, price: int, idx: Indices, cfg: Mapping[str, Any], scale: int) -> int:
    """What a full close would leave, token units (negative: the shortfall)."""
    borrow, paid, received = pending(pos, is_long, idx, scale)
    fee = position_fee(pos.size_usd, cfg["position_fee_bps"], scale)
    pnl = pnl_tokens(pos.size_usd, pos.size_tokens, price, is_long, scale)
    return pos.collateral + pnl + received - borrow - fee - paid


def liquidation_fee(size: int, risk: Mapping[str, Any], scale: int) -> int:
    """The keeper's fee, a payout: rounded down."""
    usd = risk["liquidation_fee_usd"] + bps_of(size, risk["liquidation_fee_bps"], False)
    return to_tokens(usd, scale, False)


def pin(env: Any, timestamp: int | None = None) -> int:
    """Make the next block's timestamp `timestamp` (default: the head's, so no time passes)."""
    t = env.chain.blocks.head.timestamp if timestamp is None else timestamp
    env.chain.pending_timestamp = t
    return t


def push_fresh(env: Any, market: int, price: int) -> int:
    """Push `price` observed one second after the head (and the last observation), mined
    at that second; return the time. Later transactions stay there if `pin`ned. A move
    beyond the Oracle's jump bound is stepped through it, one push a second, as the price
    keeper does (the time returned is the last push's)."""
    return push_stepped(env.oracle, env.chain, env.keeper, {market: price})


def elapse(env: Any, seconds: int, market: int, price: int) -> int:
    """Let `seconds` pass while the keeper keeps `market` fresh at `price` (a push at least
    every half `max_price_age`, the last one at the end); return the final time. Unlike a
    bare `chain.mine`, the price never goes stale, so no outage path is taken."""
    step = env.oracle.config().max_price_age // 2
    end = env.chain.blocks.head.timestamp + seconds
    t = env.chain.blocks.head.timestamp
    while t < end:
        t = min(t + step, end)
        pin(env, t)
        env.oracle.set_prices([market], [price], t, sender=env.keeper)
    return t


def buckets(vault: Any) -> tuple[int, int, int, int]:
    return (
        vault.pool_amount(),
        vault.collateral_amount(),
        vault.escrow_amount(),
        vault.insurance_amount(),
    )


def indices_used(env: Any, market: int) -> Indices:
    """The stored indices after a transaction: the ones it accrued to and settled with."""
    return Indices.of_state(env.reader.market_state(market))


def indices_at(env: Any, market: int, timestamp: int) -> Indices:
    """The indices a transaction mined at `timestamp` accrues to, for a market with one side
    open (so no funding): stored borrow index + rate x elapsed seconds."""
    rates = env.reader.rates(market)
    assert rates.funding_rate_long_per_second == rates.funding_rate_short_per_second == 0
    state = env.reader.market_state(market)
    assert timestamp >= state.last_update
    stored = Indices.of_state(state)
    accrued = rates.borrowing_rate_per_second * (timestamp - state.last_update)
    return replace(stored, borrow=stored.borrow + accrued)


def state_of(env: Any, accounts: tuple[Any, ...]) -> dict[str, Any]:
    """Everything a refused call must leave unchanged."""
    perp, vault = env.perp, env.vault
    markets = list(env.markets.values())
    return {
        "positions": [
            tuple(perp.get_position(a, m, side))
            for a in accounts
            for m in markets
            for side in (True, False)
        ],
        "markets": [tuple(env.reader.market_state(m)) for m in markets],
        "configs": [tuple(env.configurator.configs(m)) for m in markets],
        "buckets": buckets(vault),
        "reserved": (vault.reserved_amount(), env.reader.total_reserved_usd()),
        "balances": [env.token.balanceOf(a) for a in accounts] + [env.token.balanceOf(vault)],
        "risk": [tuple(env.configurator.risk_configs(m)) for m in markets],
        "insurance": (vault.insurance_amount(), perp.bad_debt_total()),
        # keeper fees credited in the Vault: the bucket and each account's balance
        "claimable": (vault.claimable_amount(), [vault.claimable(a) for a in accounts]),
        "admin": (
            env.configurator.admin(),
            env.configurator.pending_admin(),
            perp.paused(),
            perp.max_pnl_factor_bps(),
        ),
    }


def assert_refused(env: Any, accounts: tuple[Any, ...], reason: str, call: Any, *args: Any, **kwargs: Any) -> None:
    """`call` reverts with exactly `reason` and changes nothing."""
    before = state_of(env, accounts)
    with ape.reverts(reason):
        call(*args, **kwargs)
    assert state_of(env, accounts) == before


def open_position(env: Any, account: Any, market: int, is_long: bool, collateral: int, size: int):
    """Open or grow at whatever the oracle price is (no price protection)."""
    return env.perp.increase_position(
        market, is_long, collateral, size, MAX_UINT if is_long else 0, sender=account
    )


def close_position(env: Any, account: Any, market: int, is_long: bool, receiver: Any = None):
    pos = env.perp.get_position(account, market, is_long)
    worst = 0 if is_long else MAX_UINT
    return env.perp.decrease_position(
        market, is_long, 0, pos.size_usd, worst, receiver or account, sender=account
    )


def expect_update(log: Any, change: Change, account: Any, market: int, is_long: bool) -> None:
    """A PositionUpdate log matches the model's change field by field."""
    p = change.position
    assert log.account == account.address
    assert (log.market, bool(log.is_long)) == (market, is_long)
    assert (log.size_usd, log.size_tokens) == (p.size_usd, p.size_tokens)
    assert log.collateral == p.collateral
    assert (log.borrow_index, log.funding_index) == (p.borrow_index, p.funding_index)
    assert log.price == change.price
    assert log.size_delta == change.size_delta
    assert (log.collateral_in, log.amount_out) == (change.collateral_in, change.amount_out)
    assert (log.position_fee, log.borrow_fee, log.funding) == (
        change.position_fee,
        change.borrow_fee,
        change.funding,
    )
    assert (log.pnl, log.bad_debt) == (change.pnl, change.bad_debt)


__all__ = [name for name in dir() if not name.startswith("_")] + ["replace"]
