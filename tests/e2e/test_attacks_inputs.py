"""Attack catalogue: hostile inputs. Zero and huge amounts, overflow where token units
are WAD (18-decimal collateral: the packed fields' bit widths bite in token units), the
leverage and minimum-collateral boundaries (found with the reference model of
tests/unit/perp/helpers.py, accepted at the boundary, refused one unit past it), dust
positions, and order fields beyond their bounds. Each refusal is asserted by its exact
reason with nothing moved (attack_kit.refused: Vault balance and buckets, share price,
pool value, open interest, every named account's positions and balances).

Cases:
  test_attack__open_with_nothing__refused_nothing_to_do
  test_attack__open_without_collateral__refused_zero_collateral
  test_attack__collateral_without_a_position__refused_zero_size
  test_attack__size_of_2_128__refused_fees_exceed_collateral_and_max_uint_overflows
  test_attack__size_above_open_interest_cap__refused_max_open_interest
  test_attack__collateral_beyond_96_bits__refused_collateral_too_large
  test_attack__lp_deposit_beyond_128_bit_bucket__refused_bucket_overflow
  test_attack__dust_lp_deposit__refused_zero_shares_or_zero_amount
  test_attack__leverage_one_wei_above_max__refused_leverage_too_high
  test_attack__collateral_one_unit_below_min__refused_collateral_below_min
  test_attack__withdraw_collateral_past_max_leverage__refused_leverage_too_high
  test_attack__withdraw_from_a_loser_below_maintenance__refused_would_be_liquidatable
  test_attack__one_wei_position__refused_position_too_small
  test_attack__partial_close_leaving_dust__refused_position_too_small
  test_attack__close_more_than_the_position__refused_size_exceeds_position
  test_attack__withdraw_more_than_the_collateral__refused_insufficient_collateral
  test_attack__payout_to_the_zero_address__refused_zero_receiver
  test_attack__fill_one_wei_worse_than_acceptable__refused_price_not_acceptable
  test_attack__order_fields_beyond_their_bounds__refused_each_by_name
"""

from __future__ import annotations

import ape
import pytest

from attack_kit import assert_solvent, hold_time, refused
from helpers import (
    MAX_UINT,
    WAD,
    Indices,
    Position,
    build_env,
    config_of,
    largest,
    open_position,
    pin,
    predict_decrease,
    predict_increase,
    push_fresh,
    refused as model_refusal,
)
from orders_helpers import LIMIT_INCREASE, MARKET_INCREASE
from chain_isolation import isolated

SEED = 3_000 * WAD
DECIMALS = 18


@pytest.fixture(scope="module")
def env(project, deployer, keeper, lp, chain, attacker, trader):
    """18-decimal collateral: one token unit is one WAD."""
    e = build_env(project, deployer, keeper, lp, chain, DECIMALS)
    e.fund(attacker, 5_000_000)
    e.fund(trader)
    push_fresh(e, e.eth, SEED)
    pin(e)
    open_position(e, trader, e.eth, True, e.usd(10_000), 100_000 * WAD)  # a bystander
    return e


@pytest.fixture(scope="module")
def cfg(env):
    return config_of(env.configurator, env.eth)


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, cfg, deployer, attacker, keeper, trader, lp):
    """Module fixtures before any test (Ape's isolation never rebases a snapshot)."""


@pytest.fixture
def people(attacker, trader, lp):
    return [attacker, trader, lp]


def increase(env, account, is_long, collateral, size):
    return env.perp.increase_position, env.eth, is_long, collateral, size, MAX_UINT if is_long else 0


def fresh(env):
    """A price observed now, no spread (an unchanged price), the clock held there."""
    push_fresh(env, env.eth, SEED)
    return hold_time(env)


# ---------------------------------------------------------------- zero


def test_attack__open_with_nothing__refused_nothing_to_do(env, people, attacker):
    refused(env, people, "perp: nothing to do", *increase(env, attacker, True, 0, 0), sender=attacker)


def test_attack__open_without_collateral__refused_zero_collateral(env, people, attacker):
    refused(env, people, "perp: zero collateral", *increase(env, attacker, True, 0, 1_000 * WAD), sender=attacker)


def test_attack__collateral_without_a_position__refused_zero_size(env, people, attacker):
    refused(env, people, "perp: zero size", *increase(env, attacker, True, env.usd(100), 0), sender=attacker)


# ---------------------------------------------------------------- huge


def test_attack__size_of_2_128__refused_fees_exceed_collateral_and_max_uint_overflows(env, people, attacker):
    """A size past every cap: its fee alone exceeds any collateral. At 2**256 - 1 the fee's
    checked multiplication reverts before any reason is reached (a bare revert)."""
    refused(env, people, "perp: fees exceed collateral", *increase(env, attacker, True, env.usd(1_000_000), 2**128), sender=attacker)
    fn, *args = increase(env, attacker, True, env.usd(1_000_000), MAX_UINT)
    with ape.reverts():
        fn(*args, sender=attacker)


def test_attack__size_above_open_interest_cap__refused_max_open_interest(env, people, attacker, cfg):
    oi = env.perp.open_interest(env.eth, True)[0]
    size = cfg["max_open_interest_usd"] - oi + 1  # one wei over the side's cap
    refused(env, people, "perp: max open interest", *increase(env, attacker, True, env.usd(2_000_000), size), sender=attacker)


def test_attack__collateral_beyond_96_bits__refused_collateral_too_large(env, people, attacker):
    """At 18 decimals 2**96 token units is only ~$79 billion: a position's collateral
    field would overflow. Refused on opening (2**96 + $10, less a $1 opening fee) and on
    a collateral top-up."""
    env.token.mint(attacker, 2**97, sender=attacker)
    fresh(env)
    refused(env, people, "perp: collateral too large", *increase(env, attacker, True, 2**96 + env.usd(10), 1_000 * WAD), sender=attacker)
    open_position(env, attacker, env.eth, True, env.usd(100), 1_000 * WAD)
    held = env.perp.get_position(attacker, env.eth, True).collateral
    refused(env, people, "perp: collateral too large", *increase(env, attacker, True, 2**96 - held + env.usd(1), 0), sender=attacker)


def test_attack__lp_deposit_beyond_128_bit_bucket__refused_bucket_overflow(env, people, attacker):
    env.token.mint(attacker, 2**128, sender=attacker)
    fresh(env)
    room = 2**128 - 1 - env.vault.pool_amount()  # the pool bucket is 128 bits
    refused(env, people, "vault: bucket overflow", env.vault.deposit, room + 1, 0, attacker, sender=attacker)


def test_attack__dust_lp_deposit__refused_zero_shares_or_zero_amount(env, people, attacker):
    """One token unit: the mint fee (rounded up) eats it, no share is minted for free."""
    fee_bps = env.vault.mint_fee_bps()
    assert -(-1 * fee_bps // 10_000) == 1  # ceil(1 * fee) = the whole unit
    fresh(env)
    refused(env, people, "vault: zero shares", env.vault.deposit, 1, 0, attacker, sender=attacker)
    refused(env, people, "vault: zero amount", env.vault.deposit, 0, 0, attacker, sender=attacker)


# ---------------------------------------------------------------- leverage and min collateral


def boundary_size(env, cfg, collateral: int) -> int:
    """The largest size the model lets `collateral` open as a long at SEED."""
    def ok(size):
        return model_refusal(predict_increase, Position(), True, collateral, size, SEED, Indices(), cfg, env.scale) is None
    return largest(ok, WAD, collateral * env.scale * 100)


def test_attack__leverage_one_wei_above_max__refused_leverage_too_high(env, people, attacker, cfg, chain):
    collateral = env.usd(2_000) + 123_456_789
    size = boundary_size(env, cfg, collateral)
    why = model_refusal(predict_increase, Position(), True, collateral, size + 1, SEED, Indices(), cfg, env.scale)
    assert why == "perp: leverage too high"
    fresh(env)
    with isolated(chain):  # the boundary itself opens (at max leverage, to the wei)
        open_position(env, attacker, env.eth, True, collateral, size)
        pos = env.perp.get_position(attacker, env.eth, True)
        assert pos.size_usd * 10_000 <= cfg["max_leverage_bps"] * pos.collateral * env.scale
    refused(env, people, "perp: leverage too high", *increase(env, attacker, True, collateral, size + 1), sender=attacker)


def test_attack__collateral_one_unit_below_min__refused_collateral_below_min(env, people, attacker, cfg, chain):
    """Collateral is counted after the opening fee: min_collateral_usd + fee opens, one
    token unit less does not."""
    size = 100 * WAD
    fee = predict_increase(Position(), True, env.usd(100), size, SEED, Indices(), cfg, env.scale).position_fee
    enough = cfg["min_collateral_usd"] // env.scale + fee
    fresh(env)
    with isolated(chain):
        open_position(env, attacker, env.eth, True, enough, size)
        assert env.perp.get_position(attacker, env.eth, True).collateral * env.scale == cfg["min_collateral_usd"]
    refused(env, people, "perp: collateral below min", *increase(env, attacker, True, enough - 1, size), sender=attacker)


def open_attacker(env, attacker, collateral_usd, size):
    fresh(env)
    open_position(env, attacker, env.eth, True, env.usd(collateral_usd), size)
    hold_time(env)
    return Position.of(env.perp.get_position(attacker, env.eth, True))


def test_attack__withdraw_collateral_past_max_leverage__refused_leverage_too_high(env, people, attacker, cfg):
    pos = open_attacker(env, attacker, 5_000, 100_000 * WAD)
    idx = Indices(pos.borrow_index, *(2 * [pos.funding_index]))

    def ok(amount):
        return model_refusal(predict_decrease, pos, True, amount, 0, SEED, idx, cfg, env.scale) is None
    most = largest(ok, 0, pos.collateral)
    assert model_refusal(predict_decrease, pos, True, most + 1, 0, SEED, idx, cfg, env.scale) == "perp: leverage too high"
    refused(env, people, "perp: leverage too high", env.perp.decrease_position, env.eth, True, most + 1, 0, 0, attacker, sender=attacker)


def test_attack__withdraw_from_a_loser_below_maintenance__refused_would_be_liquidatable(env, people, attacker, cfg):
    """A 10x long 7 % under water: taking collateral down to 40x passes the leverage rule
    but leaves less than the maintenance margin."""
    open_attacker(env, attacker, 10_000, 100_000 * WAD)
    push_fresh(env, env.eth, SEED * 97 // 100)
    push_fresh(env, env.eth, SEED * 93 // 100)
    hold_time(env)
    take = env.perp.get_position(attacker, env.eth, True).collateral - env.usd(2_500)
    refused(env, people, "perp: would be liquidatable", env.perp.decrease_position, env.eth, True, take, 0, 0, attacker, sender=attacker)


# ---------------------------------------------------------------- dust


def test_attack__one_wei_position__refused_position_too_small(env, people, attacker):
    """1 wei of USD buys no index-token wei: a position without an entry price."""
    fresh(env)
    refused(env, people, "perp: position too small", *increase(env, attacker, True, env.usd(100), 1), sender=attacker)


def test_attack__partial_close_leaving_dust__refused_position_too_small(env, people, attacker):
    """A short closed down to 1 wei of size keeps no index tokens (a short's closed tokens
    round up): refused rather than left as an unliquidatable crumb."""
    fresh(env)
    open_position(env, attacker, env.eth, False, env.usd(1_000), 10_000 * WAD)
    hold_time(env)
    size = env.perp.get_position(attacker, env.eth, False).size_usd
    refused(env, people, "perp: position too small", env.perp.decrease_position, env.eth, False, 0, size - 1, MAX_UINT, attacker, sender=attacker)


def test_attack__close_more_than_the_position__refused_size_exceeds_position(env, people, attacker):
    pos = open_attacker(env, attacker, 1_000, 10_000 * WAD)
    refused(env, people, "perp: size exceeds position", env.perp.decrease_position, env.eth, True, 0, pos.size_usd + 1, 0, attacker, sender=attacker)


def test_attack__withdraw_more_than_the_collateral__refused_insufficient_collateral(env, people, attacker):
    pos = open_attacker(env, attacker, 1_000, 10_000 * WAD)
    refused(env, people, "perp: insufficient collateral", env.perp.decrease_position, env.eth, True, pos.collateral + 1, 1_000 * WAD, 0, attacker, sender=attacker)


def test_attack__payout_to_the_zero_address__refused_zero_receiver(env, people, attacker):
    pos = open_attacker(env, attacker, 1_000, 10_000 * WAD)
    refused(env, people, "perp: zero receiver", env.perp.decrease_position, env.eth, True, 0, pos.size_usd, 0, ape.utils.ZERO_ADDRESS, sender=attacker)


def test_attack__fill_one_wei_worse_than_acceptable__refused_price_not_acceptable(env, people, attacker):
    fresh(env)
    price = env.oracle.get_price(env.eth, True)
    refused(env, people, "perp: price not acceptable", env.perp.increase_position, env.eth, True, env.usd(1_000), 10_000 * WAD, price - 1, sender=attacker)
    refused(env, people, "perp: price not acceptable", env.perp.increase_position, env.eth, False, env.usd(1_000), 10_000 * WAD, price + 1, sender=attacker)


def test_attack__order_fields_beyond_their_bounds__refused_each_by_name(env, people, attacker, deployer):
    orders = env.orders
    env.token.approve(env.vault, MAX_UINT, sender=attacker)
    fee = orders.min_execution_fee()
    fresh(env)
    cases = [
        ("orders: collateral too large", (env.eth, MARKET_INCREASE, True, 2**96, 1_000 * WAD, MAX_UINT, 0, fee)),
        ("orders: size too large", (env.eth, MARKET_INCREASE, True, env.usd(100), 2**128, MAX_UINT, 0, fee)),
        ("orders: fee below min", (env.eth, MARKET_INCREASE, True, env.usd(100), 1_000 * WAD, MAX_UINT, 0, fee - 1)),
        ("orders: fee too large", (env.eth, MARKET_INCREASE, True, env.usd(100), 1_000 * WAD, MAX_UINT, 0, 2**64)),
        ("orders: trigger too large", (env.eth, LIMIT_INCREASE, True, env.usd(100), 1_000 * WAD, MAX_UINT, 2**96, fee)),
        ("orders: nothing to do", (env.eth, MARKET_INCREASE, True, 0, 0, MAX_UINT, 0, fee)),
        ("orders: unknown market", (2**16, MARKET_INCREASE, True, env.usd(100), 1_000 * WAD, MAX_UINT, 0, fee)),
        ("orders: bad kind", (env.eth, 5, True, env.usd(100), 1_000 * WAD, MAX_UINT, 0, fee)),
    ]
    next_id = orders.next_order_id()
    for reason, args in cases:
        refused(env, people, reason, orders.create_order, *args, sender=attacker)
    assert orders.next_order_id() == next_id
    assert_solvent(env)
