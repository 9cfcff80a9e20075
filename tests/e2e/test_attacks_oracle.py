"""Attack catalogue: the oracle. Every refusal of a price push (a stolen keeper key, a
replayed or forged observation, a price walked in small steps) and every refusal to use a
stale price, each with its named reason, the Oracle's stored prices untouched and nothing
in the protocol moved.

Bounds (contracts/Oracle.vy, perpool.params.ORACLE_CONFIG): a push must come from an
updater, be observed no later than block time + max_future_skew, no earlier than block
time - max_price_age, strictly after the stored observation; it may move the price at most
max_jump_bps from the stored price and max_window_move_bps from the window's anchor, and
at most max_deviation_bps from the market's reference feed where one is set.

Cases:
  test_attack__push_by_non_keeper__refused_not_updater
  test_attack__push_zero_price__refused_zero_price
  test_attack__push_price_beyond_96_bits__refused_price_too_large
  test_attack__push_stale_observation__refused_stale_timestamp
  test_attack__replay_stored_or_older_observation__refused_timestamp_not_newer
  test_attack__push_from_the_future__refused_future_timestamp
  test_attack__push_one_wei_past_the_jump_bound__refused_price_jump
  test_attack__walk_price_in_allowed_steps__refused_window_move
  test_attack__push_off_the_reference_feed__refused_reference_deviation
  test_attack__push_after_outage_far_from_reference__refused_reference_deviation
  test_attack__push_against_a_stale_reference__refused_reference_stale
  test_attack__batch_with_one_bad_price__whole_batch_refused_nothing_half_applied
  test_attack__push_through_order_book_by_non_keeper__refused_not_keeper
  test_attack__open_on_a_stale_price__refused_stale_price
  test_attack__lp_deposit_or_redeem_on_a_stale_price__refused_stale_price
"""

from __future__ import annotations

import pytest

from attack_kit import refused
from helpers import MAX_UINT, WAD, build_env, open_position, pin, push_fresh
from chain_isolation import isolated

SEED = 3_000 * WAD
BPS = 10_000


@pytest.fixture(scope="module")
def env(project, deployer, keeper, lp, chain, trader, accounts):
    e = build_env(project, deployer, keeper, lp, chain, 6)
    e.fund(trader)
    e.fund(accounts[7])
    push_fresh(e, e.eth, SEED)
    pin(e)
    open_position(e, trader, e.eth, True, e.usd(10_000), 100_000 * WAD)
    open_position(e, accounts[7], e.eth, False, e.usd(10_000), 60_000 * WAD)
    return e


@pytest.fixture(scope="module")
def feed(env, project, deployer):
    """A Chainlink-style reference feed (8 decimals), not yet attached to a market."""
    return deployer.deploy(project.TestFeed, 8)


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, feed, deployer, attacker, keeper, trader, lp, accounts):
    """Module fixtures before any test (Ape's isolation never rebases a snapshot)."""


@pytest.fixture
def people(trader, lp, attacker, accounts):
    return [trader, lp, attacker, accounts[7]]


def prices(env):
    return [tuple(env.oracle.price_data(m)) for m in env.markets.values()]


def push_refused(env, people, reason, markets, values, observed_at, sender):
    stored = prices(env)
    refused(env, people, reason, env.oracle.set_prices, markets, values, observed_at, sender=sender)
    assert prices(env) == stored


def next_second(env) -> int:
    """A fresh observation time: after the stored one and the head, pinned for the push."""
    t = max(env.chain.blocks.head.timestamp, env.oracle.price_timestamp(env.eth)) + 1
    pin(env, t)
    return t


def cfg(env):
    return env.oracle.config()


# ---------------------------------------------------------------- who and what


def test_attack__push_by_non_keeper__refused_not_updater(env, people, attacker):
    push_refused(env, people, "oracle: not updater", [env.eth], [SEED * 2], next_second(env), attacker)


def test_attack__push_zero_price__refused_zero_price(env, people, keeper):
    push_refused(env, people, "oracle: zero price", [env.eth], [0], next_second(env), keeper)


def test_attack__push_price_beyond_96_bits__refused_price_too_large(env, people, keeper):
    push_refused(env, people, "oracle: price too large", [env.eth], [2**96], next_second(env), keeper)


# ---------------------------------------------------------------- when


def test_attack__push_stale_observation__refused_stale_timestamp(env, people, keeper):
    t = next_second(env) + 10
    pin(env, t)
    oldest = t - cfg(env).max_price_age  # still accepted: observed_at + max_age >= now
    push_refused(env, people, "oracle: stale timestamp", [env.eth], [SEED], oldest - 1, keeper)


def test_attack__replay_stored_or_older_observation__refused_timestamp_not_newer(env, people, keeper):
    stored = env.oracle.price_timestamp(env.eth)
    next_second(env)
    for observed in (stored, stored - 1):
        push_refused(env, people, "oracle: timestamp not newer", [env.eth], [SEED], observed, keeper)


def test_attack__push_from_the_future__refused_future_timestamp(env, people, keeper):
    t = next_second(env)
    push_refused(env, people, "oracle: future timestamp", [env.eth], [SEED], t + cfg(env).max_future_skew + 1, keeper)


# ---------------------------------------------------------------- how far


def test_attack__push_one_wei_past_the_jump_bound__refused_price_jump(env, people, keeper, chain):
    stored = env.oracle.price_data(env.eth).price
    at_bound = stored * (BPS + cfg(env).max_jump_bps) // BPS  # |p - old| * BPS <= jump * old
    t = next_second(env)
    with isolated(chain):  # the bound itself is accepted
        env.oracle.set_prices([env.eth], [at_bound], t, sender=keeper)
        assert env.oracle.price_data(env.eth).price == at_bound
    pin(env, t)
    push_refused(env, people, "oracle: price jump", [env.eth], [at_bound + 1], t, keeper)


def test_attack__walk_price_in_allowed_steps__refused_window_move(env, people, keeper):
    """Pushes of the whole jump bound each (2 %, seventeen of them) compound past the 40 %
    window bound over the window's anchor: the first beyond it is refused."""
    c = cfg(env)
    anchor = env.oracle.price_data(env.eth).window_ref_price
    price = env.oracle.price_data(env.eth).price
    for _ in range(60):
        step = price * (BPS + c.max_jump_bps) // BPS
        assert abs(step - price) * BPS <= c.max_jump_bps * price
        if abs(step - anchor) * BPS > c.max_window_move_bps * anchor:
            break
        env.oracle.set_prices([env.eth], [step], next_second(env), sender=keeper)
        price = step
    else:
        pytest.fail("the walk never reached the window bound")
    assert env.oracle.price_data(env.eth).window_ref_price == anchor  # same window
    push_refused(env, people, "oracle: window move", [env.eth], [step], next_second(env), keeper)


def attach_feed(env, feed, deployer, answer_wad: int, updated_at: int = 0, max_age: int = 3_600):
    feed.set_answer(answer_wad // 10**10, updated_at, sender=deployer)
    env.oracle.set_reference_feed(env.eth, feed, max_age, sender=deployer)


def test_attack__push_off_the_reference_feed__refused_reference_deviation(env, people, keeper, feed, deployer):
    """A stolen key pushes a price within the jump bound but 5 % + 1 wei off the
    reference feed (which reads 4 % below the stored price)."""
    ref = SEED * (BPS - 400) // BPS
    attach_feed(env, feed, deployer, ref)
    bound = ref * (BPS + cfg(env).max_deviation_bps) // BPS
    assert abs(bound + 1 - SEED) * BPS <= SEED * cfg(env).max_jump_bps  # the jump bound would allow it
    push_refused(env, people, "oracle: reference deviation", [env.eth], [bound + 1], next_second(env), keeper)


def test_attack__push_after_outage_far_from_reference__refused_reference_deviation(env, people, keeper, feed, deployer):
    """After a keeper outage the jump and window bounds do not apply to the next push
    (a +30 % push would otherwise be refused "oracle: price jump"); the reference feed
    still bounds it."""
    attach_feed(env, feed, deployer, SEED, max_age=86_400)
    assert 3_000 > cfg(env).max_jump_bps
    stale_at = env.oracle.price_timestamp(env.eth) + cfg(env).max_price_age + 1
    pin(env, stale_at)  # the push lands when the stored price is stale
    push_refused(env, people, "oracle: reference deviation", [env.eth], [SEED * 13 // 10], stale_at, keeper)


def test_attack__push_against_a_stale_reference__refused_reference_stale(env, people, keeper, feed, deployer, chain):
    attach_feed(env, feed, deployer, SEED, updated_at=chain.blocks.head.timestamp - 3_601)
    push_refused(env, people, "oracle: reference stale", [env.eth], [SEED], next_second(env), keeper)


def test_attack__batch_with_one_bad_price__whole_batch_refused_nothing_half_applied(env, people, keeper):
    push_refused(env, people, "oracle: zero price", [env.eth, env.btc], [SEED, 0], next_second(env), keeper)


def test_attack__push_through_order_book_by_non_keeper__refused_not_keeper(env, people, attacker):
    """The OrderBook is an Oracle updater: its push-and-execute path takes keepers only."""
    stored = prices(env)
    refused(
        env, people, "orders: not keeper",
        env.orders.execute_orders_with_prices, [env.eth], [SEED * 2], next_second(env), [], attacker, sender=attacker,
    )
    assert prices(env) == stored


# ---------------------------------------------------------------- acting on a stale price


def stale(env) -> int:
    t = env.oracle.price_timestamp(env.eth) + cfg(env).max_price_age + 1
    pin(env, t)
    return t


def test_attack__open_on_a_stale_price__refused_stale_price(env, people, attacker):
    """The last price is older than max_price_age (the keeper is down): nobody can open
    at it, however well they know it is wrong."""
    env.fund(attacker)
    stale(env)
    refused(
        env, people, "oracle: stale price",
        env.perp.increase_position, env.eth, True, env.usd(1_000), 10_000 * WAD, MAX_UINT, sender=attacker,
    )


def test_attack__lp_deposit_or_redeem_on_a_stale_price__refused_stale_price(env, people, lp, attacker):
    """With open interest the pool value needs fresh prices: no LP mints or redeems at a
    value the market has left behind."""
    env.fund(attacker)
    env.vault.deposit(env.usd(1_000), 0, attacker, sender=attacker)
    t = stale(env) + env.vault.cooldown()
    pin(env, t)
    refused(env, people, "oracle: stale price", env.vault.deposit, env.usd(1_000), 0, attacker, sender=attacker)
    shares = env.vault.balanceOf(attacker)
    refused(env, people, "oracle: stale price", env.vault.redeem, shares, 0, attacker, sender=attacker)
