"""Local fixtures of the Oracle suite: a time base, a keeper push helper, reference feeds,
and the reference formulas the tests check the contract against.

Times: every transaction whose block time matters sets `chain.pending_timestamp` first;
views read the head block, so a test moves the head with `chain.mine(timestamp=...)`
before a read. Anvil accepts equal block timestamps, never lower ones.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from perpool import params

WAD = params.WAD
BPS = params.BPS

ETH = 1  # the first market the shared `create_oracle` registers

#: max_age of the reference feed of `feed_oracle` (s)
REF_MAX_AGE = 3_600


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _spread_max(price: int, spread_bps: int) -> int:
    """ceil(p * (10000 + s) / 10000)"""
    return _ceil_div(price * (BPS + spread_bps), BPS)


def _spread_min(price: int, spread_bps: int) -> int:
    """floor(p * (10000 - s) / 10000)"""
    return price * (BPS - spread_bps) // BPS


def _max_delta(base: int, bound_bps: int) -> int:
    """The largest |p - base| with |p - base| * 10000 <= bound_bps * base."""
    return base * bound_bps // BPS


def _scale(answer: int, decimals: int) -> int:
    """A feed answer with `decimals` decimals in WAD (exact)."""
    return answer * 10 ** (18 - decimals)


@pytest.fixture(scope="module")
def calc():
    """The formulas the contract must match, computed independently in Python."""
    return SimpleNamespace(
        WAD=WAD,
        BPS=BPS,
        spread_max=_spread_max,
        spread_min=_spread_min,
        max_delta=_max_delta,
        scale=_scale,
        ceil_div=_ceil_div,
    )


@pytest.fixture
def t0(chain):
    """A base time safely after the head block and the chain clock; tests place every event
    relative to it. Transactions whose time does not matter run before the first timed one
    (Anvil refuses a block timestamp lower than its predecessor's)."""
    return max(chain.blocks.head.timestamp, chain.pending_timestamp) + 1_000


@pytest.fixture(scope="module")
def push(keeper, chain):
    """Push `prices` for `markets` observed at `observed_at`, mined at `at` (default: the
    observation time itself)."""

    def _push(oracle, markets, prices, observed_at, *, at=None, sender=None):
        if isinstance(markets, int):
            markets, prices = [markets], [prices]
        chain.pending_timestamp = observed_at if at is None else at
        return oracle.set_prices(markets, prices, observed_at, sender=sender or keeper)

    return _push


@pytest.fixture(scope="module")
def mine_at(chain):
    """Mine an empty block at `t`, so that views see `block.timestamp == t`."""

    def _mine_at(t):
        chain.mine(timestamp=t)
        assert chain.blocks.head.timestamp == t

    return _mine_at


@pytest.fixture(scope="module")
def walk(push):
    """Push one market from its stored price to `target`, one step of at most
    `max_jump_bps` at a time, one second apart from `t`. Returns the last time used."""

    def _walk(oracle, market, target, t):
        jump = oracle.config().max_jump_bps
        price = oracle.price_data(market).price
        while price != target:
            delta = _max_delta(price, jump)
            price = min(target, price + delta) if target > price else max(target, price - delta)
            t += 1
            push(oracle, market, price, t)
            assert oracle.price_data(market).price == price
        return t

    return _walk


@pytest.fixture(scope="module")
def snapshot():
    """Everything a refused push or admin call could have changed."""

    def _snapshot(oracle):
        markets = range(0, oracle.market_count() + 2)
        return (
            oracle.admin(),
            oracle.pending_admin(),
            oracle.market_count(),
            tuple(oracle.config()),
            tuple(tuple(oracle.price_data(m)) for m in markets),
            tuple(tuple(oracle.reference_feed(m)) for m in markets),
            tuple(oracle.is_market(m) for m in markets),
        )

    return _snapshot


@pytest.fixture(scope="module")
def create_feed(project, deployer):
    def create(decimals: int = 8):
        return deployer.deploy(project.TestFeed, decimals)

    return create


@pytest.fixture(scope="module")
def ref_feed(create_feed):
    """An 8-decimal reference feed (answer still unset)."""
    return create_feed(8)


@pytest.fixture(scope="module")
def feed_oracle(create_oracle, ref_feed, deployer):
    """An oracle whose ETH market has `ref_feed` as reference, max age `REF_MAX_AGE`."""
    oracle = create_oracle()
    oracle.set_reference_feed(ETH, ref_feed, REF_MAX_AGE, sender=deployer)
    return oracle


@pytest.fixture(scope="module")
def set_answer(chain, deployer):
    """Set a feed's answer, updated at `updated_at`, in a block mined at `at`."""

    def _set_answer(feed, answer, updated_at, *, at=None):
        chain.pending_timestamp = updated_at if at is None else at
        feed.set_answer(answer, updated_at, sender=deployer)

    return _set_answer
