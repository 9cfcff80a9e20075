"""Reentrancy through the collateral token: a malicious ERC-20 (contracts/test/
TestReentrantToken.vy) calls back into the protocol from inside its transfer.

Every token transfer happens inside the Vault (`settle`, `deposit`, `redeem`), under the
Vault's lock and, for trades, Perp's lock too. The token records whether its re-entrant call
succeeded; the outer call must succeed while the re-entrant one is refused.

Each refused case has an unlocked control: the same calldata, fired by a plain token
transfer (no protocol lock held), succeeds, so a refusal is the lock's doing and not a bad
argument. A lock refusal carries no revert data, while every `assert` of Perp and the Vault
carries a reason string.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from eth_abi import decode as abi_decode

from perpool import params
from perpool.deploy import deploy_protocol

WAD = params.WAD
MAX = 2**256 - 1
UNIT = 10**6  # the reentrant token has 6 decimals
LP_DEPOSIT = 1_000_000 * UNIT


@pytest.fixture(scope="module")
def rt(project, deployer, keeper, lp, chain):
    """A protocol deployed on the reentrant token. The token itself holds tokens approved to
    the Vault, so it can act as a trader and an LP from inside its callback."""
    token = deployer.deploy(project.TestReentrantToken)
    p = deploy_protocol(project, deployer, token, updaters=(keeper,), chain=chain)
    p.vault.set_cooldown(0, sender=deployer)  # lets the token redeem right after depositing
    token.mint(lp, 2 * LP_DEPOSIT, sender=lp)
    token.approve(p.vault, MAX, sender=lp)
    p.vault.deposit(LP_DEPOSIT, 0, lp, sender=lp)
    token.mint(token, 1_000_000 * UNIT, sender=deployer)
    token.self_approve(p.vault, MAX, sender=deployer)
    return SimpleNamespace(token=token, oracle=p.oracle, vault=p.vault, perp=p.perp, eth=p.markets["ETH"])


@pytest.fixture(scope="module")
def funded_trader(rt, trader):
    """A trader funded with the reentrant token, holding an ETH long to decrease."""
    rt.token.mint(trader, 1_000_000 * UNIT, sender=trader)
    rt.token.approve(rt.vault, MAX, sender=trader)
    rt.perp.increase_position(rt.eth, True, 10_000 * UNIT, 50_000 * WAD, MAX, sender=trader)
    return trader


def fire_unlocked(rt, attacker, target, payload) -> None:
    """Arm the token and fire the callback from a plain transfer: no protocol lock is held."""
    rt.token.arm(target, payload, sender=attacker)
    rt.token.transfer(attacker, 0, sender=attacker)
    assert rt.token.reentry_attempted()


@pytest.fixture(scope="module")
def token_actor(rt, funded_trader, attacker):
    """The token contract as a trader (an ETH short) and an LP, set up through unlocked
    callbacks, so each re-entrant call below has valid arguments."""
    open_short = rt.perp.increase_position.encode_input(rt.eth, False, 2_000 * UNIT, 10_000 * WAD, 0)
    fire_unlocked(rt, attacker, rt.perp, open_short)
    assert rt.token.reentry_succeeded()
    deposit = rt.vault.deposit.encode_input(5_000 * UNIT, 0, rt.token.address)
    fire_unlocked(rt, attacker, rt.vault, deposit)
    assert rt.token.reentry_succeeded()
    assert rt.perp.get_position(rt.token, rt.eth, False).size_usd == 10_000 * WAD
    assert rt.vault.balanceOf(rt.token) > 0
    return rt.token


# ---------------------------------------------------------------- re-entrant calls


def target_calls(rt):
    """name -> (target contract, calldata, a reader of the state the call would change)."""
    token = rt.token.address
    shares = rt.vault.balanceOf(token) // 2
    return {
        "perp.increase_position": (
            rt.perp,
            rt.perp.increase_position.encode_input(rt.eth, False, 1_000 * UNIT, 5_000 * WAD, 0),
            lambda: tuple(rt.perp.get_position(token, rt.eth, False)),
        ),
        "perp.decrease_position": (
            rt.perp,
            rt.perp.decrease_position.encode_input(rt.eth, False, 0, 4_000 * WAD, MAX, token),
            lambda: tuple(rt.perp.get_position(token, rt.eth, False)),
        ),
        "vault.deposit": (
            rt.vault,
            rt.vault.deposit.encode_input(1_000 * UNIT, 0, token),
            lambda: (rt.vault.balanceOf(token), rt.token.balanceOf(token)),
        ),
        "vault.redeem": (
            rt.vault,
            rt.vault.redeem.encode_input(shares, 0, token),
            lambda: (rt.vault.balanceOf(token), rt.token.balanceOf(token)),
        ),
        "perp.pool_value": (
            rt.perp,
            rt.perp.pool_value.encode_input(True),
            lambda: (),  # a view: it changes nothing, it must not even be readable
        ),
    }


TARGETS = ["perp.increase_position", "perp.decrease_position", "vault.deposit", "vault.redeem", "perp.pool_value"]


@pytest.mark.parametrize("target", TARGETS)
def test_reentry_control__target_from_plain_transfer__succeeds(rt, token_actor, attacker, target):
    contract, payload, state = target_calls(rt)[target]
    before = state()

    fire_unlocked(rt, attacker, contract, payload)

    assert rt.token.reentry_succeeded()
    if target != "perp.pool_value":
        assert state() != before
    else:
        assert int.from_bytes(bytes(rt.token.reentry_returndata()), "big") == rt.perp.pool_value(True)


def test_reentry_control__invalid_call_from_plain_transfer__fails_with_a_reason(rt, token_actor, attacker):
    # the token has no long: the refusal is Perp's own assert, with its reason string,
    # unlike the bare revert of a held lock
    payload = rt.perp.decrease_position.encode_input(rt.eth, True, 0, WAD, 0, rt.token.address)

    fire_unlocked(rt, attacker, rt.perp, payload)

    assert not rt.token.reentry_succeeded()
    data = bytes(rt.token.reentry_returndata())
    assert data[:4] == bytes.fromhex("08c379a0")  # Error(string)
    assert abi_decode(["string"], data[4:])[0] == "perp: no position"


def outer_trade(rt, funded_trader, kind: str):
    """A trade of funded_trader whose Vault.settle moves tokens, so the token calls back
    while Perp and the Vault are both locked; asserts the trade took full effect."""
    before = rt.perp.get_position(funded_trader, rt.eth, True)
    tokens_before = rt.token.balanceOf(funded_trader)
    if kind == "increase":  # settle pulls the collateral: transferFrom
        rt.perp.increase_position(rt.eth, True, 1_000 * UNIT, 2_000 * WAD, MAX, sender=funded_trader)
        after = rt.perp.get_position(funded_trader, rt.eth, True)
        assert after.size_usd == before.size_usd + 2_000 * WAD
        assert rt.token.balanceOf(funded_trader) == tokens_before - 1_000 * UNIT
    else:  # settle pays the withdrawn collateral: transfer
        rt.perp.decrease_position(rt.eth, True, 1_000 * UNIT, 10_000 * WAD, 0, funded_trader, sender=funded_trader)
        after = rt.perp.get_position(funded_trader, rt.eth, True)
        assert after.size_usd == before.size_usd - 10_000 * WAD
        assert rt.token.balanceOf(funded_trader) == tokens_before + 1_000 * UNIT


@pytest.mark.parametrize("outer", ["increase", "decrease"])
@pytest.mark.parametrize("target", TARGETS)
def test_reentry__from_perp_settle_callback__refused_while_outer_trade_succeeds(
    rt, token_actor, funded_trader, attacker, target, outer
):
    contract, payload, state = target_calls(rt)[target]
    before = state()
    rt.token.arm(contract, payload, sender=attacker)

    outer_trade(rt, funded_trader, outer)

    assert rt.token.reentry_attempted()
    assert not rt.token.reentry_succeeded()
    assert bytes(rt.token.reentry_returndata()) == b""  # the lock's bare revert, no reason
    assert state() == before  # the token's position, shares and balance did not move


@pytest.mark.parametrize(
    ("outer", "target"),
    [
        ("deposit", "perp.increase_position"),
        ("deposit", "perp.decrease_position"),
        ("redeem", "perp.increase_position"),
        ("redeem", "perp.decrease_position"),
    ],
)
def test_reentry__from_vault_lp_callback_into_perp_trade__refused_while_lp_call_succeeds(
    rt, token_actor, lp, attacker, outer, target
):
    contract, payload, state = target_calls(rt)[target]
    before = state()
    shares, tokens = rt.vault.balanceOf(lp), rt.token.balanceOf(lp)
    rt.token.arm(contract, payload, sender=attacker)

    if outer == "deposit":  # Vault pulls the deposit: transferFrom
        rt.vault.deposit(1_000 * UNIT, 0, lp, sender=lp)
        assert rt.vault.balanceOf(lp) > shares
        assert rt.token.balanceOf(lp) == tokens - 1_000 * UNIT
    else:  # Vault pays the redemption: transfer
        rt.vault.redeem(shares // 100, 0, lp, sender=lp)
        assert rt.vault.balanceOf(lp) == shares - shares // 100
        assert rt.token.balanceOf(lp) > tokens

    assert rt.token.reentry_attempted()
    assert not rt.token.reentry_succeeded()
    # Perp was not locked: it ran until its Vault.settle hit the Vault's lock
    assert bytes(rt.token.reentry_returndata()) == b""
    assert state() == before
