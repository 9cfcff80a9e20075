"""RiskEngine.auto_deleverage (ADL) and its views, closing through Perp.adl_decrease.

Formulas (RiskEngine.vy header and `_clamp`, Perp.vy `_decrease`), all WAD USD:
    side pnl S      = pnl_usd(open interest usd, tokens, close price) (longs at the min price)
    pool P          = vault.pool_amount() * token_scale
    factor          = max(S, 0) * 10_000 // P;  triggered when S * 10_000 > max_adl * P (strict)
    clamp           d = (S * BPS - f * P'') * Z // (R * BPS - paid + ceil(f * fee_bps * Z / BPS)),
                    P'' = P + pending borrowing (WAD, up) + 3 token units + 1e12 - pending funding,
                    paid = f * R, times cap / S (down) while S exceeds the traders' cap,
                    0 when the numerator is <= 0 (f = min_pnl_factor_after_adl, R the position's
                    pnl, Z its size)
    closed          min(request, size, clamp), paid out as a normal decrease of that size
    re-check        S' * BPS >= f * P' after the close
    score           (|pnl| * WAD // coll) * size // coll, signed like pnl; coll = collateral * scale

Own protocol: a $100k pool (a ~10 % move on a few $100k of size passes the trigger), a 10 %
reserve factor (so that size fits), no insurance cut, ADL from 10 % down to 5 %. Moves of
~10 % turn the Oracle's spread on: closes fill at the spread prices. Views run at the head's
timestamp and transactions are pinned to it, so a view sees the fees the call will settle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import ape
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import (
    BPS,
    NO_CUT_RISK,
    WAD,
    Env,
    Indices,
    Position,
    assert_refused,
    borrow_fee_wad,
    buckets,
    ceil_div,
    config_of,
    elapse,
    expect_update,
    fast_reverts,  # noqa: F401 (autouse fixture)
    funding_wad,
    indices_used,
    mul_div,
    open_position,
    pin,
    pnl_wad,
    predict_decrease,
    push_fresh,
    spread_price,
    tokens_closed,
)
from perpool import params
from perpool.deploy import deploy_protocol
from chain_isolation import isolated

POOL_USD = 100_000
ADL_MARKET = {**params.MARKET_CONFIG, "reserve_factor_bps": 1_000}
ADL_RISK = {**NO_CUT_RISK, "max_pnl_factor_for_adl_bps": 1_000, "min_pnl_factor_after_adl_bps": 500}
ROUNDING_MARGIN_UNITS = 4  # RiskEngine.ROUNDING_UNITS
MICRO_USD = 10**12
SPREAD_BPS = params.ORACLE_CONFIG["spread_bps"]  # the deploy's Oracle config

BASE = params.LOCAL_MARKETS["ETH"]
ODD = 12_345_678_901_234_567
OPEN_PRICE = BASE + ODD  # 0.0004 % off the seed: no spread
UP_PRICE = BASE * 10_990 // BPS + ODD // 3  # +9.9 %: longs profit, the spread turns on
DOWN_PRICE = BASE * 9_010 // BPS - ODD // 3  # -9.9 %: shorts profit


@pytest.fixture(scope="module")
def env(project, deployer, keeper, lp, chain) -> Env:
    token = deployer.deploy(project.TestToken, "Test USD", "tUSD", 6)
    p = deploy_protocol(
        project, deployer, token, market_config=ADL_MARKET, risk_config=ADL_RISK,
        updaters=(keeper,), chain=chain,
    )
    e = Env.of(p, keeper, chain)
    e.fund(lp, POOL_USD * 2)
    p.vault.deposit(e.usd(POOL_USD), 0, lp, sender=lp)
    return e


@pytest.fixture(scope="module")
def owners(env, trader, accounts):
    """Four funded position owners."""
    people = [trader, accounts[7], accounts[8], accounts[9]]
    for a in people:
        env.fund(a)
    return people


@pytest.fixture(scope="module")
def cfg(env):
    return config_of(env.configurator, env.eth)


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(env, owners, cfg, attacker, deployer, keeper):
    """Module- and session-scoped fixtures before any test (no snapshot rebase)."""


# ---------------------------------------------------------------- model


def open_all(env, specs, is_long=True):
    """Push OPEN_PRICE, open [(owner, collateral $, size WAD)], return the stored positions."""
    push_fresh(env, env.eth, OPEN_PRICE)
    out = []
    for owner, collateral, size in specs:
        pin(env)
        open_position(env, owner, env.eth, is_long, env.usd(collateral), size)
        out.append(position(env, owner, is_long))
    return out


def position(env, owner, is_long=True) -> Position:
    return Position.of(env.perp.get_position(owner, env.eth, is_long))


def move(env, is_long: bool, price: int | None = None, spread: bool = True) -> int:
    """Push the price that makes `is_long` profit; return its close price (the spread is on
    after a move of more than 2 % within the window)."""
    price = price or (UP_PRICE if is_long else DOWN_PRICE)
    push_fresh(env, env.eth, price)
    close = spread_price(price, SPREAD_BPS if spread else 0, not is_long)
    assert env.perp.close_price(env.eth, is_long) == close
    pin(env)
    return close


def set_risk(env, deployer, **overrides):
    env.configurator.set_risk_config(env.eth, {**ADL_RISK, **overrides}, sender=deployer)


def factor(pnl: int, pool_usd: int) -> int:
    return 0 if pnl <= 0 else pnl * BPS // pool_usd


@dataclass(frozen=True)
class Side:
    """A side before a change: close price, open interest, pool amount (token units) and the
    indices a transaction in the head's second settles with."""

    is_long: bool
    price: int
    usd: int
    tokens: int
    pool: int
    idx: Indices

    @property
    def pnl(self) -> int:
        return pnl_wad(self.usd, self.tokens, self.price, self.is_long)


def side(env, is_long, price) -> Side:
    usd, tokens = env.perp.open_interest(env.eth, is_long)
    idx = Indices.of_state(env.perp.current_indices(env.eth))
    return Side(is_long, price, usd, tokens, env.vault.pool_amount(), idx)


def score(pos: Position, pnl: int, scale: int) -> int:
    coll = max(pos.collateral * scale, 1)
    s = mul_div(mul_div(abs(pnl), WAD, coll), pos.size_usd, coll)
    return -s if pnl < 0 else s


def clamp(env, pos: Position, sd: Side, risk, cfg) -> int:
    """RiskEngine._clamp restated (its docstring's formula, same rounding)."""
    f = risk["min_pnl_factor_after_adl_bps"]
    pool_usd = sd.pool * env.scale
    pool = pool_usd + borrow_fee_wad(pos, sd.idx) + ROUNDING_MARGIN_UNITS * env.scale + MICRO_USD
    pool -= funding_wad(pos, sd.is_long, sd.idx)
    numerator = sd.pnl * BPS - f * pool
    if numerator <= 0:
        return 0
    pnl = pnl_wad(pos.size_usd, pos.size_tokens, sd.price, sd.is_long)
    cap = pool_usd * risk["max_pnl_factor_for_traders_bps"] // BPS
    paid = f * pnl
    if sd.pnl > cap:
        paid = mul_div(paid, cap, sd.pnl)
    fee = mul_div(f * cfg["position_fee_bps"], pos.size_usd, BPS, True)
    return mul_div(numerator, pos.size_usd, pnl * BPS - paid + fee)


def close_change(env, pos: Position, sd: Side, size: int, cfg, traders_bps: int):
    """A normal decrease of `size` (helpers model) with Perp._cap_profit applied to its
    profit: above the cap, profit x cap // side profit, then settled as usual."""
    change = predict_decrease(pos, sd.is_long, 0, size, sd.price, sd.idx, cfg, env.scale)
    cap = sd.pool * env.scale * traders_bps // BPS
    if change.pnl <= 0 or sd.pnl <= cap:
        return change
    pnl = mul_div(change.pnl, cap, sd.pnl)
    settle = pnl + change.funding - change.borrow_fee - change.position_fee
    new, amount_out, bad_debt = change.position, 0, 0
    if size == pos.size_usd:
        amount_out, bad_debt = max(pos.collateral + settle, 0), max(-pos.collateral - settle, 0)
    elif settle >= 0:
        amount_out = settle
    else:
        assert pos.collateral + settle >= 0
        new = replace(new, collateral=pos.collateral + settle)
    collateral_change = new.collateral - pos.collateral
    return replace(
        change, position=new, pnl=pnl, amount_out=amount_out, bad_debt=bad_debt,
        pool_delta=-amount_out - collateral_change, collateral_delta=collateral_change,
    )


def after_state(env, pos: Position, sd: Side, size: int, cfg, traders_bps: int = 9_000):
    """(change, side pnl after, pool usd after) of an ADL close of `size`."""
    change = close_change(env, pos, sd, size, cfg, traders_bps)
    closed = tokens_closed(pos.size_usd, pos.size_tokens, size, sd.is_long)
    pnl = pnl_wad(sd.usd - size, sd.tokens - closed, sd.price, sd.is_long)
    return change, pnl, (sd.pool + change.pool_delta) * env.scale


def adl(env, caller, owner, is_long, size):
    pin(env)
    return env.risk.auto_deleverage(owner, env.eth, is_long, size, sender=caller)


# ---------------------------------------------------------------- happy path


def test_auto_deleverage__triggered_request_below_clamp__closes_it_and_pays_as_a_decrease(
    env, owners, cfg, attacker
):
    perp, risk = env.perp, env.risk
    a, b = owners[0], owners[1]
    pos, _ = open_all(env, [(a, 20_000, 200_000 * WAD + ODD), (b, 2_000, 20_000 * WAD)])
    sd = side(env, True, move(env, True))
    state = risk.adl_state(env.eth, True)
    assert (state.pnl_usd, state.pool_usd) == (sd.pnl, sd.pool * env.scale)
    assert state.pnl_factor_bps == factor(sd.pnl, sd.pool * env.scale) > 1_000
    assert state.triggered and sd.pnl * BPS > 1_000 * sd.pool * env.scale
    limit = clamp(env, pos, sd, ADL_RISK, cfg)
    assert risk.adl_size_limit(a, env.eth, True) == limit
    request = 50_000 * WAD + 7
    assert request < limit
    expected_score = score(pos, pnl_wad(pos.size_usd, pos.size_tokens, sd.price, True), env.scale)
    assert risk.adl_score(a, env.eth, True) == expected_score > 0

    # what the owner's own decrease of the same size, in the same second, would pay
    with isolated(env.chain):
        pin(env)
        normal = perp.decrease_position(env.eth, True, 0, request, 0, a, sender=a).return_value
    before = buckets(env.vault), env.token.balanceOf(a), env.token.balanceOf(attacker)

    tx = adl(env, attacker, a, True, request)

    assert tx.return_value == request
    assert indices_used(env, env.eth) == sd.idx
    change, s_after, pool_after = after_state(env, pos, sd, request, cfg)
    assert change.amount_out == normal
    closed = tokens_closed(pos.size_usd, pos.size_tokens, request, True)
    assert change.pnl == pnl_wad(request, closed, sd.price, True) // env.scale  # pro rata
    [update] = tx.decode_logs(perp.PositionUpdate)
    expect_update(update, change, a, env.eth, True)
    assert position(env, a) == change.position
    (p, c, e, i), owner_balance, caller_balance = before
    assert buckets(env.vault) == (p + change.pool_delta, c + change.collateral_delta, e, i)
    assert env.token.balanceOf(a) == owner_balance + change.amount_out
    assert env.token.balanceOf(attacker) == caller_balance  # the keeper earns nothing
    assert (s_after, pool_after) == tuple(risk.adl_state(env.eth, True))[:2]
    [log] = tx.decode_logs(risk.AutoDeleverage)
    assert log.key == perp.position_key(a, env.eth, True)
    assert (log.account, log.market, log.is_long) == (a.address, env.eth, True)
    assert (log.keeper, log.score, log.price) == (attacker.address, expected_score, sd.price)
    assert (log.size_requested, log.size_delta) == (request, request)
    assert log.amount_out == change.amount_out
    assert log.pnl_factor_before_bps == state.pnl_factor_bps
    assert log.pnl_factor_after_bps == factor(s_after, pool_after)


def test_auto_deleverage__request_above_clamp__clamped_to_the_target(env, owners, cfg, keeper):
    risk = env.risk
    a = owners[0]
    [pos] = open_all(env, [(a, 20_000, 200_000 * WAD + ODD)])
    sd = side(env, True, move(env, True))
    limit = risk.adl_size_limit(a, env.eth, True)
    assert limit == clamp(env, pos, sd, ADL_RISK, cfg)
    assert 0 < limit < pos.size_usd

    tx = adl(env, keeper, a, True, pos.size_usd)

    assert tx.return_value == limit
    [log] = tx.decode_logs(risk.AutoDeleverage)
    assert (log.size_requested, log.size_delta) == (pos.size_usd, limit)
    after = risk.adl_state(env.eth, True)
    target = ADL_RISK["min_pnl_factor_after_adl_bps"]
    assert after.pnl_usd * BPS >= target * after.pool_usd
    assert after.pnl_factor_bps == log.pnl_factor_after_bps == target
    # close to the target: less than a cent of side profit above it
    assert after.pnl_usd * BPS - target * after.pool_usd < BPS * 10**16
    _, s_model, pool_model = after_state(env, pos, sd, limit, cfg)
    assert (s_model, pool_model) == (after.pnl_usd, after.pool_usd)
    # 1 % more would have gone below the target
    _, s_more, pool_more = after_state(env, pos, sd, limit * 101 // 100, cfg)
    assert s_more * BPS < target * pool_more
    assert not after.triggered
    assert position(env, a).size_usd == pos.size_usd - limit


# id, is_long, [(collateral $, size WAD)], which position, request (None: the whole size, "half":
# half the limit, or WAD USD), risk overrides, what limits the close
OVERSHOOT_CASES = [
    ("long-one", True, [(10_000, 200_000 * WAD + ODD)], 0, None, {}, "clamp"),
    ("long-small-of-two-huge-request", True, [(10_000, 200_000 * WAD), (1_000, 20_000 * WAD + 11)],
     1, 10**30, {}, "position"),
    ("long-half-limit", True, [(10_000, 200_000 * WAD), (4_000, 100_000 * WAD + 5)], 1, "half", {},
     "request"),
    ("long-traders-cap", True, [(10_000, 300_000 * WAD + ODD)], 0, None,
     {"max_pnl_factor_for_traders_bps": 1_000}, "clamp"),
    ("short-one", False, [(8_000, 250_000 * WAD + ODD)], 0, None, {}, "clamp"),
    ("short-narrow-band", False, [(8_000, 250_000 * WAD), (2_000, 40_000 * WAD + 9)], 0, None,
     {"max_pnl_factor_for_adl_bps": 1_500, "min_pnl_factor_after_adl_bps": 1_400}, "clamp"),
]


@pytest.mark.parametrize(
    "is_long, specs, target, ask, overrides, limited_by",
    [c[1:] for c in OVERSHOOT_CASES],
    ids=[c[0] for c in OVERSHOOT_CASES],
)
def test_auto_deleverage__various_positions__never_below_the_target(
    env, owners, cfg, deployer, keeper, is_long, specs, target, ask, overrides, limited_by
):
    risk_cfg = {**ADL_RISK, **overrides}
    if overrides:
        set_risk(env, deployer, **overrides)
    positions = open_all(env, [(owners[i], c, z) for i, (c, z) in enumerate(specs)], is_long)
    pos, owner = positions[target], owners[target]
    sd = side(env, is_long, move(env, is_long))
    before = env.risk.adl_state(env.eth, is_long)
    assert before.triggered
    model = clamp(env, pos, sd, risk_cfg, cfg)
    limit = env.risk.adl_size_limit(owner, env.eth, is_long)
    assert limit == min(model, pos.size_usd) > 0
    size = {None: pos.size_usd, "half": limit // 2}.get(ask, ask)
    traders = risk_cfg["max_pnl_factor_for_traders_bps"]
    # the traders' cap (q < 1 in the clamp) is passed only where the case lowers it
    over_cap = before.pnl_usd * BPS > traders * before.pool_usd
    assert over_cap == ("max_pnl_factor_for_traders_bps" in overrides)

    tx = adl(env, keeper, owner, is_long, size)

    closed = min(size, limit)
    assert tx.return_value == closed
    assert closed == {"clamp": model, "position": pos.size_usd, "request": size}[limited_by]
    after = env.risk.adl_state(env.eth, is_long)
    f = risk_cfg["min_pnl_factor_after_adl_bps"]
    assert after.pnl_usd * BPS >= f * after.pool_usd
    change, s_after, pool_after = after_state(env, pos, sd, closed, cfg, traders)
    assert (s_after, pool_after) == (after.pnl_usd, after.pool_usd)
    [update] = tx.decode_logs(env.perp.PositionUpdate)
    expect_update(update, change, owner, env.eth, is_long)
    [log] = tx.decode_logs(env.risk.AutoDeleverage)
    assert (log.size_requested, log.size_delta, log.amount_out) == (size, closed, change.amount_out)
    if limited_by == "position":  # a full close: everything left is paid out
        fees = change.position_fee + change.borrow_fee
        assert change.amount_out == pos.collateral + change.pnl - fees > 0
        assert env.perp.get_position(owner, env.eth, is_long).size_usd == 0
    if limited_by == "clamp":  # the target is reached: 1 % more would have passed it
        assert after.pnl_usd * BPS - f * after.pool_usd < BPS * 10**16
        more = min(closed * 101 // 100, pos.size_usd)
        _, s_more, pool_more = after_state(env, pos, sd, more, cfg, traders)
        assert s_more * BPS < f * pool_more


FIXTURE_CHECK = HealthCheck.function_scoped_fixture
_holding = st.tuples(st.integers(2, 40), st.integers(5_000, 300_000), st.integers(0, 10**18))
_big = st.tuples(st.integers(2, 40), st.integers(150_000, 300_000), st.integers(0, 10**18))


@settings(max_examples=8, deadline=None, suppress_health_check=[FIXTURE_CHECK])
@given(
    is_long=st.booleans(),
    holdings=st.builds(lambda big, rest: [big, *rest], _big, st.lists(_holding, max_size=2)),
    target=st.integers(0, 2),
    fraction=st.integers(1, 10_000),  # of the position requested, bps
    move_bps=st.integers(800, 990),
    f=st.integers(0, 900),
    traders=st.sampled_from([9_000, 1_000, 300]),
)
def test_auto_deleverage__random_positions__never_below_the_target(
    env, owners, cfg, deployer, keeper, is_long, holdings, target, fraction, move_bps, f, traders
):
    """1-3 positions (2-40x; one of $150k-$300k, the others $5k-$300k), a 8-9.9 % move in the
    side's favour (always past the 10 % trigger), targets 0-9 %, traders' caps 90, 10 and 3 %:
    the limit is the model's clamp and no close takes the factor below the target."""
    overrides = {"min_pnl_factor_after_adl_bps": f, "max_pnl_factor_for_traders_bps": traders}
    risk_cfg = {**ADL_RISK, **overrides}
    with isolated(env.chain):
        set_risk(env, deployer, **overrides)
        specs = [(o, usd // lev, usd * WAD + tail) for o, (lev, usd, tail) in zip(owners, holdings)]
        positions = open_all(env, specs, is_long)
        i = target % len(positions)
        pos, owner = positions[i], owners[i]
        moved = BASE * (BPS + (move_bps if is_long else -move_bps)) // BPS
        sd = side(env, is_long, move(env, is_long, moved))
        assert env.risk.adl_state(env.eth, is_long).triggered
        limit = env.risk.adl_size_limit(owner, env.eth, is_long)
        assert limit == min(clamp(env, pos, sd, risk_cfg, cfg), pos.size_usd) > 0
        size = max(pos.size_usd * fraction // BPS, 1)

        tx = adl(env, keeper, owner, is_long, size)

        assert tx.return_value == min(size, limit)
        after = env.risk.adl_state(env.eth, is_long)
        assert after.pnl_usd * BPS >= f * after.pool_usd
        _, s_after, pool_after = after_state(env, pos, sd, min(size, limit), cfg, traders)
        assert (s_after, pool_after) == (after.pnl_usd, after.pool_usd)


def test_auto_deleverage__zero_target_with_a_losing_neighbour__closes_the_limit(
    env, owners, deployer, keeper
):
    """f = 0: d = S * Z // R. A profitable long A and a long B opened after the move at the
    max price (a loser by the spread) leave S < R, so d < Z; the inputs below are a case found
    by a search over sizes and prices where the rounding of the side's PnL leaves S' = -1 wei.
    The factor after is max(S', 0) / P = 0, the target, so the close should go through."""
    set_risk(env, deployer, max_pnl_factor_for_adl_bps=1, min_pnl_factor_after_adl_bps=0)
    a, b = owners[0], owners[1]
    z_a, z_b = 103_971_890_352_513_273_063_217, 63_327_946_240_293_186_157_725
    [pos] = open_all(env, [(a, 10_400, z_a)])
    price = move(env, True, 3_274_072_197_500_159_791_796)
    pin(env)
    open_position(env, b, env.eth, True, env.usd(6_400), z_b)
    sd = side(env, True, price)
    r = pnl_wad(pos.size_usd, pos.size_tokens, price, True)
    assert 0 < sd.pnl < r and env.risk.adl_state(env.eth, True).triggered
    limit = env.risk.adl_size_limit(a, env.eth, True)
    assert limit == sd.pnl * BPS * pos.size_usd // (r * BPS) < pos.size_usd
    closed = tokens_closed(pos.size_usd, pos.size_tokens, limit, True)
    assert pnl_wad(sd.usd - limit, sd.tokens - closed, price, True) == -1  # the re-check's S'

    tx = adl(env, keeper, a, True, pos.size_usd)

    assert tx.return_value == limit
    assert env.risk.adl_state(env.eth, True).pnl_factor_bps == 0


# ---------------------------------------------------------------- refusals


def refused(env, owners, reason, owner, is_long, size, caller):
    pin(env)
    call = env.risk.auto_deleverage
    assert_refused(env, owners, reason, call, owner, env.eth, is_long, size, sender=caller)


def test_auto_deleverage__below_trigger__refused(env, owners, keeper):
    a = owners[0]
    open_all(env, [(a, 20_000, 100_000 * WAD)])
    move(env, True, BASE * 10_150 // BPS, spread=False)  # +1.5 %: ~$1.5k profit, $100k pool
    state = env.risk.adl_state(env.eth, True)
    assert 0 < state.pnl_usd and not state.triggered
    assert state.pnl_usd * BPS <= ADL_RISK["max_pnl_factor_for_adl_bps"] * state.pool_usd
    assert env.risk.adl_size_limit(a, env.eth, True) == 0
    refused(env, owners, "risk: adl not triggered", a, True, WAD, keeper)


def test_auto_deleverage__losing_position_on_a_triggered_side__refused(env, owners, keeper):
    a, late = owners[0], owners[1]
    open_all(env, [(a, 20_000, 200_000 * WAD)])
    push_fresh(env, env.eth, UP_PRICE)
    pin(env)
    open_position(env, late, env.eth, True, env.usd(2_000), 20_000 * WAD)  # at the max price
    price = move(env, True, UP_PRICE - 10 * WAD)
    pos = position(env, late)
    assert pnl_wad(pos.size_usd, pos.size_tokens, price, True) < 0
    assert env.risk.adl_state(env.eth, True).triggered
    assert env.risk.adl_score(late, env.eth, True) < 0
    assert env.risk.adl_size_limit(late, env.eth, True) == 0
    refused(env, owners, "risk: position not profitable", late, True, WAD, keeper)


def test_auto_deleverage__no_position_or_zero_size__refused(env, owners, keeper):
    a, nobody = owners[0], owners[2]
    open_all(env, [(a, 20_000, 200_000 * WAD)])
    move(env, True)
    assert env.risk.adl_state(env.eth, True).triggered
    assert env.risk.adl_size_limit(nobody, env.eth, True) == 0
    refused(env, owners, "risk: no position", nobody, True, WAD, keeper)
    refused(env, owners, "risk: no position", a, False, WAD, keeper)
    refused(env, owners, "risk: zero size", a, True, 0, keeper)


def test_auto_deleverage__pending_fees_keep_the_pool_at_target__refused_target_reached(
    env, owners, deployer, keeper
):
    """Triggered (S > 50.01 % of P) with a clamp of 0: closing any part of the old position
    moves its pending borrowing into the pool, and S <= 50 % of (P + that fee)."""
    overrides = {"max_pnl_factor_for_adl_bps": 5_001, "min_pnl_factor_after_adl_bps": 5_000}
    risk_cfg = {**ADL_RISK, **overrides}
    set_risk(env, deployer, **overrides)
    fast = {**ADL_MARKET, "borrowing_factor": WAD // 3_600 // 100}  # 1 %/h at full use, the bound
    env.configurator.set_market_config(env.eth, fast, sender=deployer)
    cfg = config_of(env.configurator, env.eth)
    old, fresh = owners[0], owners[1]
    [pos] = open_all(env, [(old, 30_000, 300_000 * WAD)])
    elapse(env, 1_200, env.eth, OPEN_PRICE)  # ~0.3 %/h on $300k: ~$300 of borrowing
    pin(env)
    open_position(env, fresh, env.eth, True, env.usd(1_000), 3_000 * WAD)
    pool_usd = env.vault.pool_amount() * env.scale
    owed = borrow_fee_wad(pos, Indices.of_state(env.perp.current_indices(env.eth)))
    assert owed * 5_000 > pool_usd  # the band below is not empty
    # aim the side's profit at the middle of (50.01 % P, 50 % (P + owed)]
    aim = (5_001 * pool_usd // BPS + 5_000 * (pool_usd + owed) // BPS) // 2
    usd, tokens = env.perp.open_interest(env.eth, True)
    close = ceil_div((aim + usd) * WAD, tokens)
    push_fresh(env, env.eth, BASE * 11 // 10)  # two steps of <= 10 %
    sd = side(env, True, move(env, True, ceil_div(close * BPS, BPS - SPREAD_BPS)))
    state = env.risk.adl_state(env.eth, True)
    assert state.triggered and state.pnl_usd * BPS > 5_001 * state.pool_usd
    assert clamp(env, pos, sd, risk_cfg, cfg) == 0
    assert env.risk.adl_size_limit(old, env.eth, True) == 0
    # a position touched just now has no pending fee: it can still be deleveraged
    young = position(env, fresh)
    assert env.risk.adl_size_limit(fresh, env.eth, True) == clamp(env, young, sd, risk_cfg, cfg) > 0
    refused(env, owners, "risk: adl target reached", old, True, pos.size_usd, keeper)


def test_auto_deleverage__stale_price__refused_with_the_oracles_reason(env, owners, keeper):
    a = owners[0]
    open_all(env, [(a, 20_000, 200_000 * WAD)])
    t = push_fresh(env, env.eth, UP_PRICE)
    assert env.risk.adl_state(env.eth, True).triggered
    pin(env, t + env.oracle.config().max_price_age + 1)
    env.chain.mine()
    with ape.reverts("oracle: stale price"):
        env.risk.adl_state(env.eth, True)
    refused(env, owners, "oracle: stale price", a, True, WAD, keeper)


def test_adl_decrease__not_the_deleverager__refused(env, owners, deployer, keeper, attacker):
    a = owners[0]
    [pos] = open_all(env, [(a, 20_000, 200_000 * WAD)])
    move(env, True)
    assert env.perp.deleverager() == env.risk.address
    for caller in (attacker, a, keeper, deployer):
        pin(env)
        assert_refused(env, owners, "perp: not deleverager", env.perp.adl_decrease, a, env.eth,
                       True, pos.size_usd // 2, sender=caller)


# ---------------------------------------------------------------- score and ranking


def test_adl_score__formula__signed_and_zero_without_position(env, owners):
    long_, short, nobody = owners[0], owners[1], owners[2]
    open_all(env, [(long_, 3_000 + 1, 70_000 * WAD + ODD)])
    open_all(env, [(short, 5_000, 40_000 * WAD + 3)], is_long=False)
    price_long = move(env, True)
    price_short = env.perp.close_price(env.eth, False)
    assert price_short == spread_price(UP_PRICE, SPREAD_BPS, True)
    for owner, is_long, price in ((long_, True, price_long), (short, False, price_short)):
        pos = position(env, owner, is_long)
        pnl = pnl_wad(pos.size_usd, pos.size_tokens, price, is_long)
        coll = pos.collateral * env.scale
        expected = (abs(pnl) * WAD // coll) * pos.size_usd // coll
        assert env.risk.adl_score(owner, env.eth, is_long) == (expected if pnl > 0 else -expected)
        assert (pnl > 0) == is_long
    assert env.risk.adl_score(nobody, env.eth, True) == 0
    assert env.risk.adl_score(short, env.eth, True) == 0


def test_auto_deleverage__ranking__keeper_goes_down_it(env, owners, keeper):
    """Same entry, so the score is pnl% x leverage^2: 20x first, then the two 10x positions
    (equal scores) by key ascending, then 5x. Every close is below its clamp, so the side
    stays triggered all the way down, and the events record the order."""
    risk, perp = env.risk, env.perp
    collaterals = (10_000, 5_000, 10_000, 20_000)
    open_all(env, [(o, c, 100_000 * WAD) for o, c in zip(owners, collaterals)])
    price = move(env, True)
    ranked = []
    for owner in owners:
        pos = position(env, owner)
        expected = score(pos, pnl_wad(pos.size_usd, pos.size_tokens, price, True), env.scale)
        assert risk.adl_score(owner, env.eth, True) == expected
        key = int(perp.position_key(owner, env.eth, True).hex(), 16)
        ranked.append((-expected, key, owner))
    ranked.sort()
    assert [r[2] for r in ranked][::3] == [owners[1], owners[3]]
    assert ranked[1][0] == ranked[2][0]  # a tie, broken by key
    logged = []
    for minus_score, _, owner in ranked:
        assert risk.adl_state(env.eth, True).triggered
        assert risk.adl_size_limit(owner, env.eth, True) > 5_000 * WAD
        tx = adl(env, keeper, owner, True, 5_000 * WAD)
        [log] = tx.decode_logs(risk.AutoDeleverage)
        assert (log.score, log.size_delta) == (-minus_score, 5_000 * WAD)
        logged.append((-log.score, int(log.key.hex(), 16), owner))
    assert logged == ranked


# ---------------------------------------------------------------- pause


def test_auto_deleverage__protocol_paused__still_runs(env, owners, cfg, deployer, keeper):
    a = owners[0]
    [pos] = open_all(env, [(a, 20_000, 200_000 * WAD)])
    sd = side(env, True, move(env, True))
    env.configurator.set_paused(True, sender=deployer)
    assert env.perp.paused()
    pin(env)
    with ape.reverts("perp: paused"):
        open_position(env, owners[1], env.eth, True, env.usd(1_000), 10_000 * WAD)
    limit = env.risk.adl_size_limit(a, env.eth, True)
    assert limit == clamp(env, pos, sd, ADL_RISK, cfg) > 0
    balance = env.token.balanceOf(a)

    tx = adl(env, keeper, a, True, pos.size_usd)

    assert tx.return_value == limit
    change, s_after, pool_after = after_state(env, pos, sd, limit, cfg)
    assert env.token.balanceOf(a) == balance + change.amount_out
    after = env.risk.adl_state(env.eth, True)
    assert (after.pnl_usd, after.pool_usd) == (s_after, pool_after)
    assert after.pnl_usd * BPS >= ADL_RISK["min_pnl_factor_after_adl_bps"] * after.pool_usd
