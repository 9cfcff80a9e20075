"""Negative controls (issue #8): the suite's checks can fail.

Each variant below is the real contract with one deliberate bug, patched into a copy of its
source and compiled only inside this test run (tests/negative/variants.py: every original
snippet must occur exactly once, or the variant refuses to build with a clear message). The
variant is deployed and wired exactly like the real contract (perpool.deploy.deploy_protocol,
through tests/unit/perp/helpers.build_env, with Ape's `project` handing out the variant's
container for that one contract). For each variant one check restates (or calls) the unit
suite's check, and two tests run it: `..._caught_on_the_variant` (the check fails, with the
assertion it is meant to fail on) and `..._passes_on_the_real_contract`.

Variant (patch)                                     Check that catches it (mirrors)
--------------------------------------------------  ---------------------------------------------
vault_shares_round_up                               check_deposit_does_not_dilute: with no mint
  Vault.deposit: mul_div(net_wad, supply, value,    fee, a deposit must not lower the exact LP
  False) -> True (shares round up), and the         share value pool*scale/supply, and mints
  Vault's share-price check after its writes        floor(net_wad*supply/value) shares
  removed (it would refuse the deposit first)       (vault/test_deposit.py::..._does_not_dilute_
                                                    existing_lps, made exact, and ::..._mints_
                                                    floor_of_net_wad_times_supply_over_value)
vault_shares_round_up_checked                       the same check: the deposit reverts "vault:
  the rounding alone (the on-chain check kept)      deposit would dilute" (the contract's own
                                                    guard; one test, no real-contract twin:
                                                    vault_shares_round_up's is the same check)
vault_missing_lock                                  check_lp_callback_reentry_refused: a Perp
  Vault: `# pragma nonreentrancy on` removed         trade re-entered from the token callback of
  (and `@reentrant` on pool_amount, which needs     an LP's deposit/redeem is refused (perp/
  the pragma)                                       test_reentrancy.py::test_reentry__from_vault_
                                                    lp_callback_into_perp_trade__refused_while_
                                                    lp_call_succeeds, with that module's calls).
                                                    Re-entrant deposits/redeems during a Perp
                                                    trade stay refused on this variant: they read
                                                    Perp's pool_value, which Perp's lock refuses
perp_missing_lock                                   check_reentry_refused with target
  Perp: `# pragma nonreentrancy on` removed          perp.pool_value: a read of Perp's pool value
                                                    from the token callback of a Perp trade's
                                                    settle is refused (perp/test_reentrancy.py::
                                                    test_reentry__from_perp_settle_callback__
                                                    refused_while_outer_trade_succeeds); its
                                                    re-entrant trades stay refused on this
                                                    variant: they meet the Vault's lock
funding_received_rounds_up                          check_funding_received_within_paid: over one
  Perp._pending: funding_received                   payer and five receivers closing at the same
  _to_tokens(..., False) -> True                    index, sum of funding received <= sum paid
                                                    (docs/perp.md "Funding"), then each position's
                                                    funding equals the model (perp/test_fees.py::
                                                    test_funding__several_positions_both_sides__
                                                    paid_covers_received_and_dust_stays_in_pool)
liquidate_at_the_boundary                           check_boundary_is_healthy: a long built so that
  Perp._liquidate: healthy when remaining >=        remaining == maintenance exactly is neither
  maintenance -> remaining > maintenance            liquidatable nor liquidated (perp/
                                                    test_liquidation.py::test_liquidate__at_the_
                                                    boundary_then_one_wei_past__refused_healthy_
                                                    then_liquidates, its "floor" case)
oracle_no_staleness                                 check_stale_price_refused: growing a long and
  Oracle.get_price: the `_is_stale` assert           opening a short at a stale price are refused
  removed                                           "oracle: stale price" and change nothing
                                                    (perp/test_increase.py::test_increase__stale_
                                                    price__open_and_grow_refused)

The harness tests prove the compile path is Ape's (an unpatched compile gives Ape's exact
bytecode) and that a variant whose snippet no longer matches fails loudly.

What running the unit suite's own tests on the variants showed (when these controls were
written): the liquidation boundary test catches the `>` variant only in its two "floor"
cases, since elsewhere a wei of price moves the remaining value by tens of wei and the
boundary is never hit exactly (hence the exact construction here); the deposit dilution test
with its 30 bps mint fee does not catch shares rounding up (the exact model tests do); and
each reentrancy lock is caught by one family of cases only, because the other contract's
lock refuses the rest (the two `..._still_refused_by_...` tests below show it).
"""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import ape
import pytest

import test_fees as fees  # tests/unit/perp: the funding model and steps
import test_reentrancy as reentrancy  # tests/unit/perp: the re-entrant calls and the outer trades
import variants

from helpers import (  # tests/unit/perp/helpers.py
    MAX_UINT,
    WAD,
    ZERO_ADDRESS,
    Position,
    assert_refused,
    build_env,
    config_of,
    fast_reverts,  # noqa: F401 (autouse fixture)
    health,
    indices_at,
    largest,
    open_position,
    pin,
    push_fresh,
)
from perpool import params
from perpool.deploy import deploy_protocol

from variants import SwappedProject

BASE = params.LOCAL_MARKETS["ETH"]
ODD = 123_456_789_012_345  # wei of USD that make the roundings matter
HOUR = 3_600
DAY = 86_400


# ---------------------------------------------------------------- deployments


@pytest.fixture(scope="module")
def real_env(project, deployer, keeper, lp, chain):
    """The real protocol, deployed as the unit suites deploy it (default risk settings)."""
    return build_env(project, deployer, keeper, lp, chain, 6, risk_config=params.RISK_CONFIG)


@pytest.fixture(scope="module")
def make_variant_env(project, deployer, keeper, lp, chain, variant_container):
    def make(variant: variants.Variant):
        swapped = SwappedProject(project, **{variant.contract: variant_container(variant)})
        env = build_env(swapped, deployer, keeper, lp, chain, 6, risk_config=params.RISK_CONFIG)
        deployed = {"Oracle": env.oracle, "Vault": env.vault, "Perp": env.perp}[variant.contract]
        assert deployed.contract_type.name == variant.contract_name  # the variant is wired in
        return env

    return make


@pytest.fixture(scope="module")
def funding_variant_env(make_variant_env):
    return make_variant_env(variants.FUNDING_RECEIVED_ROUNDS_UP)


@pytest.fixture(scope="module")
def boundary_variant_env(make_variant_env):
    return make_variant_env(variants.LIQUIDATE_AT_THE_BOUNDARY)


@pytest.fixture(scope="module")
def stale_variant_env(make_variant_env):
    return make_variant_env(variants.ORACLE_NO_STALENESS)


def build_lp_vault(container, deployer, token, lps) -> object:
    """A stand-alone Vault (as tests/unit/vault builds it) whose share value is not a round
    number: two deposits with a 30 bps mint fee, then fees set to zero."""
    vault = deployer.deploy(container, token.address, params.VAULT_NAME, params.VAULT_SYMBOL)
    vault.set_fees(30, 30, sender=deployer)
    vault.set_cooldown(0, sender=deployer)
    unit = 10 ** token.decimals()
    for who in lps:
        token.mint(who, 100_000_000 * unit, sender=who)
        token.approve(vault, MAX_UINT, sender=who)
    vault.deposit(10_000 * unit + unit // 7, 0, lps[0], sender=lps[0])
    vault.deposit(777 * unit + unit // 3, 0, lps[1], sender=lps[1])
    vault.set_fees(0, 0, sender=deployer)
    return vault


@pytest.fixture(scope="module")
def lp_token(create_token):
    return create_token(6)


@pytest.fixture(scope="module")
def real_vault(project, deployer, lp_token, lp, other_lp, trader):
    return build_lp_vault(project.Vault, deployer, lp_token, (lp, other_lp, trader))


@pytest.fixture(scope="module")
def rounding_variant_vault(variant_container, deployer, lp_token, lp, other_lp, trader):
    container = variant_container(variants.VAULT_SHARES_ROUND_UP)
    return build_lp_vault(container, deployer, lp_token, (lp, other_lp, trader))


@pytest.fixture(scope="module")
def checked_rounding_variant_vault(variant_container, deployer, lp_token, lp, other_lp, trader):
    container = variant_container(variants.VAULT_SHARES_ROUND_UP_CHECKED)
    return build_lp_vault(container, deployer, lp_token, (lp, other_lp, trader))


UNIT = 10**6  # the reentrant token has 6 decimals


def build_reentrancy_scene(proj, deployer, keeper, lp, chain, trader, attacker) -> SimpleNamespace:
    """test_reentrancy.py's `rt`, `funded_trader` and `token_actor` fixtures in one: the
    protocol on the re-entrant token, a trader holding an ETH long, and the token itself as
    a trader (an ETH short) and an LP, set up through unlocked callbacks."""
    token = deployer.deploy(proj.TestReentrantToken)
    p = deploy_protocol(proj, deployer, token, updaters=(keeper,), chain=chain)
    p.vault.set_cooldown(0, sender=deployer)
    token.mint(lp, 2 * reentrancy.LP_DEPOSIT, sender=lp)
    token.approve(p.vault, MAX_UINT, sender=lp)
    p.vault.deposit(reentrancy.LP_DEPOSIT, 0, lp, sender=lp)
    token.mint(token, 1_000_000 * UNIT, sender=deployer)
    token.self_approve(p.vault, MAX_UINT, sender=deployer)
    rt = SimpleNamespace(token=token, oracle=p.oracle, vault=p.vault, perp=p.perp, eth=p.markets["ETH"])

    token.mint(trader, 1_000_000 * UNIT, sender=trader)
    token.approve(rt.vault, MAX_UINT, sender=trader)
    rt.perp.increase_position(rt.eth, True, 10_000 * UNIT, 50_000 * WAD, MAX_UINT, sender=trader)

    open_short = rt.perp.increase_position.encode_input(rt.eth, False, 2_000 * UNIT, 10_000 * WAD, 0)
    reentrancy.fire_unlocked(rt, attacker, rt.perp, open_short)
    assert rt.token.reentry_succeeded()
    deposit = rt.vault.deposit.encode_input(5_000 * UNIT, 0, rt.token.address)
    reentrancy.fire_unlocked(rt, attacker, rt.vault, deposit)
    assert rt.token.reentry_succeeded()
    return rt


@pytest.fixture(scope="module")
def real_rt(project, deployer, keeper, lp, chain, trader, attacker):
    return build_reentrancy_scene(project, deployer, keeper, lp, chain, trader, attacker)


@pytest.fixture(scope="module")
def vault_lock_variant_rt(project, deployer, keeper, lp, chain, trader, attacker, variant_container):
    swapped = SwappedProject(project, Vault=variant_container(variants.VAULT_MISSING_LOCK))
    rt = build_reentrancy_scene(swapped, deployer, keeper, lp, chain, trader, attacker)
    assert rt.vault.contract_type.name == variants.VAULT_MISSING_LOCK.contract_name
    return rt


@pytest.fixture(scope="module")
def perp_lock_variant_rt(project, deployer, keeper, lp, chain, trader, attacker, variant_container):
    swapped = SwappedProject(project, Perp=variant_container(variants.PERP_MISSING_LOCK))
    rt = build_reentrancy_scene(swapped, deployer, keeper, lp, chain, trader, attacker)
    assert rt.perp.contract_type.name == variants.PERP_MISSING_LOCK.contract_name
    return rt


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(
    real_env, funding_variant_env, boundary_variant_env, stale_variant_env,
    real_vault, rounding_variant_vault, checked_rounding_variant_vault, real_rt, vault_lock_variant_rt, perp_lock_variant_rt,
):
    """Deploy everything before the first test, so Ape's isolation snapshots stay in order."""


# ---------------------------------------------------------------- the checks


def check_deposit_does_not_dilute(vault, depositor, amount: int) -> None:
    """vault/test_deposit.py::test_deposit__into_pool__does_not_dilute_existing_lps, made
    exact (no mint fee to hide a rounding, the share value as a fraction rather than the
    floored `share_price`), then ::test_deposit__into_pool__mints_floor_of_net_wad_times_
    supply_over_value's formula."""
    scale = vault.token_scale()
    supply, pool = vault.totalSupply(), vault.pool_amount()
    assert vault.mint_fee_bps() == 0 and vault.pool_value_source() == ZERO_ADDRESS
    assert (amount * scale * supply) % (pool * scale) != 0  # the share division rounds
    value_before = Fraction(pool * scale, supply)

    shares = vault.deposit(amount, 0, depositor, sender=depositor).return_value

    value_after = Fraction(vault.pool_amount() * scale, vault.totalSupply())
    assert value_after >= value_before, "a deposit diluted the LPs: the share value fell"
    assert shares == amount * scale * supply // (pool * scale), "shares are not rounded down"


def check_reentry_refused(rt, trader, attacker, target: str, outer: str = "increase") -> None:
    """perp/test_reentrancy.py::test_reentry__from_perp_settle_callback__refused_while_
    outer_trade_succeeds, with that module's calls and outer trades."""
    contract, payload, state = reentrancy.target_calls(rt)[target]
    before = state()
    rt.token.arm(contract, payload, sender=attacker)

    reentrancy.outer_trade(rt, trader, outer)

    assert rt.token.reentry_attempted()
    assert not rt.token.reentry_succeeded(), f"the re-entrant {target} succeeded"
    assert bytes(rt.token.reentry_returndata()) == b""  # the lock's bare revert, no reason
    assert state() == before


def check_lp_callback_reentry_refused(rt, lp, attacker, outer: str, target: str) -> None:
    """perp/test_reentrancy.py::test_reentry__from_vault_lp_callback_into_perp_trade__
    refused_while_lp_call_succeeds: a Perp trade re-entered from the token callback of an
    LP's deposit or redeem is refused (Perp is not locked: its Vault.settle meets the
    Vault's lock), while the LP call goes through."""
    contract, payload, state = reentrancy.target_calls(rt)[target]
    before = state()
    shares, tokens = rt.vault.balanceOf(lp), rt.token.balanceOf(lp)
    rt.token.arm(contract, payload, sender=attacker)

    if outer == "deposit":  # the Vault pulls the deposit: transferFrom
        rt.vault.deposit(1_000 * UNIT, 0, lp, sender=lp)
        assert rt.vault.balanceOf(lp) > shares
        assert rt.token.balanceOf(lp) == tokens - 1_000 * UNIT
    else:  # the Vault pays the redemption: transfer
        rt.vault.redeem(shares // 100, 0, lp, sender=lp)
        assert rt.vault.balanceOf(lp) == shares - shares // 100
        assert rt.token.balanceOf(lp) > tokens

    assert rt.token.reentry_attempted()
    assert not rt.token.reentry_succeeded(), f"the re-entrant {target} succeeded"
    assert bytes(rt.token.reentry_returndata()) == b""
    assert state() == before


def check_funding_received_within_paid(env, payer, receivers) -> None:
    """perp/test_fees.py::test_funding__several_positions_both_sides__paid_covers_received_
    and_dust_stays_in_pool, on a book built for the invariant: five receivers (shorts, odd
    sizes) and one payer (a larger long) opened last, so every funding flow runs between
    them; all close at the same index values. docs/perp.md "Funding": Σ received <= Σ paid."""
    book = [(r, False, 2_000, (12_000 + 1_111 * i) * WAD + ODD * (i + 1)) for i, r in enumerate(receivers)]
    book.append((payer, True, 15_000, 150_000 * WAD + 7 * ODD))
    for account, is_long, collateral, size in book:
        fees.advance(env, HOUR)
        fees.open_position(env, account, is_long, collateral, size)
    positions = {(a.address, l): env.perp.get_position(a, env.eth, l) for a, l, _, _ in book}
    snap = fees.MarketSnap.read(env, env.eth)
    rates = snap.funding_rates()
    assert rates[0] < 0 < rates[1]  # the long pays, the shorts receive
    assert snap.oi_long < 10 * snap.oi_short  # below the receive cap: all that is paid is received

    ts = fees.advance(env, 2 * DAY)
    indices = snap.indices_at(ts)
    events = []
    for account, is_long, _, _ in book:
        fees.pin(env, ts)  # every close settles at the same index values
        tx = fees.close_position(env, account, is_long)
        assert tx.timestamp == ts
        events.append((account, is_long, fees.update_event(env, tx)))

    paid = sum(max(-ev.funding, 0) for _, _, ev in events)
    received = sum(max(ev.funding, 0) for _, _, ev in events)
    assert paid > 0 and received > 0
    assert received <= paid, f"funding received {received} exceeds funding paid {paid}"
    for account, is_long, ev in events:
        expected = fees.pending(positions[(account.address, is_long)], is_long, indices, env.scale)
        assert ev.funding == expected["funding"], "a position's funding differs from the model"


def boundary_position(env, alice) -> int:
    """Open a long whose remaining value equals its maintenance margin exactly at some price,
    push that price (without spread) and pin the next block to it; return the price.

    The "floor" case of test_liquidation.py's boundary test: $800 + ODD at ~40x, so a wei
    of price moves the value by less than a wei and the last healthy price leaves
    remaining == maintenance exactly (with more index tokens the edge can overshoot, and
    `>=` and `>` would agree there)."""
    cfg = config_of(env.configurator, env.eth)
    push_fresh(env, env.eth, BASE)
    pin(env)
    open_position(env, alice, env.eth, True, env.usd(20), 800 * WAD + ODD)
    pos = Position.of(env.perp.get_position(alice, env.eth, True))
    assert pos.size_tokens < WAD
    ts = env.chain.blocks.head.timestamp + 1
    idx = indices_at(env, env.eth, ts)

    def healthy(price: int) -> bool:
        remaining, maintenance = health(pos, True, price, idx, cfg, env.scale)
        return remaining >= maintenance

    edge = largest(lambda p: not healthy(p), BASE * 98 // 100, BASE) + 1
    remaining, maintenance = health(pos, True, edge, idx, cfg, env.scale)
    assert remaining == maintenance == cfg["min_maintenance_usd"]  # exactly on the boundary
    assert push_fresh(env, env.eth, edge) == ts
    assert env.oracle.get_price(env.eth, True) == env.oracle.get_price(env.eth, False) == edge
    v = env.perp.position_values(alice, env.eth, True, edge)
    assert (v.remaining, v.maintenance) == (remaining, maintenance)  # the contract agrees
    pin(env)
    return edge


def check_boundary_is_healthy(env, alice, liquidator) -> None:
    """perp/test_liquidation.py::test_liquidate__at_the_boundary_then_one_wei_past__refused_
    healthy_then_liquidates: at remaining == maintenance a position is healthy (docs/risk.md:
    liquidatable when remaining < maintenance)."""
    boundary_position(env, alice)
    assert not env.perp.is_liquidatable(alice, env.eth, True)
    assert_refused(
        env, (alice, liquidator), "perp: position healthy",
        env.perp.liquidate, alice, env.eth, True, liquidator, sender=liquidator,
    )


def check_stale_price_refused(env, trader) -> None:
    """perp/test_increase.py::test_increase__stale_price__open_and_grow_refused."""
    pin(env)
    open_position(env, trader, env.eth, True, env.usd(1_000), 10_000 * WAD)
    env.chain.mine(deltatime=env.oracle.config().max_price_age + 1)
    assert env.oracle.is_stale(env.eth)
    for is_long in (True, False):  # grow the long, open a short
        assert_refused(
            env, (trader,), "oracle: stale price",
            env.perp.increase_position, env.eth, is_long, env.usd(100), 1_000 * WAD,
            MAX_UINT if is_long else 0, sender=trader,
        )


# ---------------------------------------------------------------- 1. rounding direction

DEPOSIT = 4_321 * 10**6 + 123_457  # token units, odd


def test_vault_shares_round_up__caught_on_the_variant(rounding_variant_vault, accounts):
    with pytest.raises(AssertionError, match="diluted the LPs"):
        check_deposit_does_not_dilute(rounding_variant_vault, accounts[4], DEPOSIT)


def test_vault_shares_round_up__passes_on_the_real_contract(real_vault, accounts):
    check_deposit_does_not_dilute(real_vault, accounts[4], DEPOSIT)


def test_vault_shares_round_up__with_the_share_price_check__refused_on_chain(checked_rounding_variant_vault, accounts):
    """The rounding mistake alone: the Vault's own check after its writes (issue #8) sees
    the share price fall and refuses the deposit, before any test's assertion runs."""
    with ape.reverts("vault: deposit would dilute"):
        check_deposit_does_not_dilute(checked_rounding_variant_vault, accounts[4], DEPOSIT)


# ---------------------------------------------------------------- 2. missing lock

LP_CALLBACK_CASES = [
    ("deposit", "perp.increase_position"),
    ("deposit", "perp.decrease_position"),
    ("redeem", "perp.increase_position"),
    ("redeem", "perp.decrease_position"),
]
OUTERS = ["increase", "decrease"]


@pytest.mark.parametrize(("outer", "target"), LP_CALLBACK_CASES)
def test_vault_missing_lock__caught_on_the_variant(vault_lock_variant_rt, lp, attacker, outer, target):
    with pytest.raises(AssertionError, match=f"re-entrant {target} succeeded"):
        check_lp_callback_reentry_refused(vault_lock_variant_rt, lp, attacker, outer, target)


@pytest.mark.parametrize(("outer", "target"), LP_CALLBACK_CASES)
def test_vault_missing_lock__passes_on_the_real_contract(real_rt, lp, attacker, outer, target):
    check_lp_callback_reentry_refused(real_rt, lp, attacker, outer, target)


@pytest.mark.parametrize("outer", OUTERS)
@pytest.mark.parametrize("target", ["vault.deposit", "vault.redeem"])
def test_vault_missing_lock__reentrant_lp_calls_still_refused_by_perps_view_lock(
    vault_lock_variant_rt, trader, attacker, target, outer
):
    """Not a control: why the trade-callback cases do not catch the missing Vault lock. A
    re-entrant deposit or redeem in the unlocked Vault prices shares through Perp's
    `pool_value`, a view that Perp's lock (held by the outer trade) refuses, so those cases
    of the reentrancy suite pass on this variant too."""
    check_reentry_refused(vault_lock_variant_rt, trader, attacker, target, outer)


@pytest.mark.parametrize("outer", OUTERS)
def test_perp_missing_lock__caught_on_the_variant(perp_lock_variant_rt, trader, attacker, outer):
    with pytest.raises(AssertionError, match="re-entrant perp.pool_value succeeded"):
        check_reentry_refused(perp_lock_variant_rt, trader, attacker, "perp.pool_value", outer)


@pytest.mark.parametrize("outer", OUTERS)
def test_perp_missing_lock__passes_on_the_real_contract(real_rt, trader, attacker, outer):
    check_reentry_refused(real_rt, trader, attacker, "perp.pool_value", outer)


@pytest.mark.parametrize("target", ["perp.increase_position", "perp.decrease_position"])
def test_perp_missing_lock__reentrant_trades_still_refused_by_the_vault_lock(
    perp_lock_variant_rt, trader, attacker, target
):
    """Not a control: why only the read-only case catches the missing Perp lock. A
    re-entrant trade runs in the unlocked Perp until its Vault.settle meets the Vault's
    lock, so the trade targets of the reentrancy suite pass on this variant too."""
    check_reentry_refused(perp_lock_variant_rt, trader, attacker, target)


# ---------------------------------------------------------------- 3. funding rounding


def funding_accounts(env, accounts):
    payer, receivers = accounts[4], [accounts[i] for i in (3, 5, 6, 7, 8)]
    for account in (payer, *receivers):
        env.fund(account)
    return payer, receivers


def test_funding_received_rounds_up__caught_on_the_variant(funding_variant_env, accounts):
    payer, receivers = funding_accounts(funding_variant_env, accounts)
    with pytest.raises(AssertionError, match="exceeds funding paid"):
        check_funding_received_within_paid(funding_variant_env, payer, receivers)


def test_funding_received_rounds_up__passes_on_the_real_contract(real_env, accounts):
    payer, receivers = funding_accounts(real_env, accounts)
    check_funding_received_within_paid(real_env, payer, receivers)


# ---------------------------------------------------------------- 4. >= vs > in liquidation


def test_liquidate_at_the_boundary__caught_on_the_variant(boundary_variant_env, trader, accounts):
    boundary_variant_env.fund(trader)
    with pytest.raises(AssertionError, match="did not revert"):
        check_boundary_is_healthy(boundary_variant_env, trader, accounts[9])


def test_liquidate_at_the_boundary__passes_on_the_real_contract(real_env, trader, accounts):
    real_env.fund(trader)
    check_boundary_is_healthy(real_env, trader, accounts[9])


# ---------------------------------------------------------------- 5. staleness


def test_oracle_no_staleness__caught_on_the_variant(stale_variant_env, trader):
    stale_variant_env.fund(trader)
    with pytest.raises(AssertionError, match="did not revert"):
        check_stale_price_refused(stale_variant_env, trader)


def test_oracle_no_staleness__passes_on_the_real_contract(real_env, trader):
    real_env.fund(trader)
    check_stale_price_refused(real_env, trader)


# ---------------------------------------------------------------- the harness


def test_harness__unpatched_compile_gives_apes_exact_bytecode(project):
    """The variants differ from what the suite tests only by their patch."""
    source = (variants.CONTRACTS / "Oracle.vy").read_text()
    compiled = variants.compile_source("Oracle", source, "Oracle")
    assert compiled.deployment_bytecode.bytecode == project.Oracle.contract_type.deployment_bytecode.bytecode


def test_harness__snippet_not_found_exactly_once__refuses_loudly():
    moved = variants.Variant("moved", "Oracle", (("this text is not in the Oracle", ""),), "")
    with pytest.raises(variants.PatchError, match="occurs 0 times in contracts/Oracle.vy"):
        variants.patched_source(moved)
    twice = variants.Variant("twice", "Oracle", (("# pragma", ""),), "")
    with pytest.raises(variants.PatchError, match="occurs 2 times"):
        variants.patched_source(twice)


@pytest.mark.parametrize("variant", variants.ALL, ids=lambda v: v.name)
def test_harness__every_variant_patches_exactly_once(variant):
    assert variants.patched_source(variant) != (variants.CONTRACTS / f"{variant.contract}.vy").read_text()
