"""Vault fixtures and a Python model of the Vault's formulas.

The model restates Vault.vy's arithmetic with Python integers, so the tests derive every
expected number (fees, shares, amounts paid) instead of hard-coding results:

- mint/burn fee     = ceil(x * bps / 10_000)                       (fee rounds up)
- first deposit     shares = net_wad - DEAD_SHARES, DEAD_SHARES to 0x...dEaD
- later deposits    shares = floor(net_wad * supply / value(max))  (shares round down)
- redeem            gross  = floor(floor(shares * value(min) / supply) / token_scale)
                    amount = gross - ceil(gross * burn_bps / 10_000)

Module-scoped deploys are reverted to their post-fixture state before every test by Ape's
isolation, so each test starts from the same funded vault.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests
from eth_utils import to_hex

WAD = 10**18
BPS = 10_000
DEAD = "0x000000000000000000000000000000000000dEaD"
ZERO = "0x0000000000000000000000000000000000000000"
DEAD_SHARES = 10**15
MIN_FIRST_DEPOSIT = WAD
MAX_FEE_BPS = 100
MAX_COOLDOWN = 172_800
DEFAULT_COOLDOWN = 900

# settings of the `vault` fixture: non-zero fees so every happy path exercises fee rounding
MINT_FEE_BPS = 30
BURN_FEE_BPS = 30
COOLDOWN = 900

# whole tokens minted to each actor by the `vault` fixture
FUNDING_TOKENS = 100_000_000


def ceil_div(x: int, d: int) -> int:
    return -(-x // d)


@dataclass(frozen=True)
class DepositQuote:
    fee: int  # token units
    net_wad: int
    shares: int  # to the receiver
    dead_shares: int  # to 0x...dEaD (first deposit only)


@dataclass(frozen=True)
class RedeemQuote:
    gross: int  # token units
    fee: int
    amount: int  # paid


class Model:
    """Vault.vy's formulas in Python. Pure functions plus readers of on-chain inputs."""

    WAD = WAD
    BPS = BPS
    DEAD = DEAD
    ZERO = ZERO
    DEAD_SHARES = DEAD_SHARES
    MIN_FIRST_DEPOSIT = MIN_FIRST_DEPOSIT
    MAX_FEE_BPS = MAX_FEE_BPS
    MAX_COOLDOWN = MAX_COOLDOWN
    DEFAULT_COOLDOWN = DEFAULT_COOLDOWN
    MINT_FEE_BPS = MINT_FEE_BPS
    BURN_FEE_BPS = BURN_FEE_BPS
    COOLDOWN = COOLDOWN

    @staticmethod
    def fee(x: int, bps: int) -> int:
        """Fee on `x`, rounded up."""
        return ceil_div(x * bps, BPS)

    @staticmethod
    def deposit(amount: int, mint_bps: int, scale: int, supply: int, value: int) -> DepositQuote:
        fee = Model.fee(amount, mint_bps)
        net_wad = (amount - fee) * scale
        if supply == 0:
            return DepositQuote(fee, net_wad, net_wad - DEAD_SHARES, DEAD_SHARES)
        return DepositQuote(fee, net_wad, net_wad * supply // value, 0)

    @staticmethod
    def redeem(shares: int, burn_bps: int, scale: int, supply: int, value: int) -> RedeemQuote:
        gross = (shares * value // supply) // scale
        fee = Model.fee(gross, burn_bps)
        return RedeemQuote(gross, fee, gross - fee)

    # -- readers: take the formula's inputs from the chain, value from the pool amount
    @staticmethod
    def quote_deposit(vault, amount: int, value: int | None = None) -> DepositQuote:
        scale = vault.token_scale()
        if value is None:
            value = vault.pool_amount() * scale
        return Model.deposit(amount, vault.mint_fee_bps(), scale, vault.totalSupply(), value)

    @staticmethod
    def quote_redeem(vault, shares: int, value: int | None = None) -> RedeemQuote:
        scale = vault.token_scale()
        if value is None:
            value = vault.pool_amount() * scale
        return Model.redeem(shares, vault.burn_fee_bps(), scale, vault.totalSupply(), value)

    @staticmethod
    def min_first_deposit(mint_bps: int, scale: int) -> int:
        """Smallest amount (token units) whose net of fee is worth at least $1."""
        net_units = ceil_div(MIN_FIRST_DEPOSIT, scale)
        amount = ceil_div(net_units * BPS, BPS - mint_bps)  # close to the answer

        def enough(a: int) -> bool:
            return (a - Model.fee(a, mint_bps)) * scale >= MIN_FIRST_DEPOSIT

        # the net of fee never decreases as the amount grows: walk to the boundary
        while not enough(amount):
            amount += 1
        while enough(amount - 1):
            amount -= 1
        return amount


@pytest.fixture(scope="module")
def model():
    return Model


@pytest.fixture(scope="module")
def fresh_account(accounts):
    """An account that never deposited nor held shares."""
    return accounts[7]


@pytest.fixture(scope="module")
def new_admin(accounts):
    return accounts[8]


@pytest.fixture(scope="module", params=[6, 18], ids=["dec6", "dec18"])
def decimals(request):
    """Collateral decimals; a module that does not depend on them overrides this fixture."""
    return request.param


@pytest.fixture(scope="module")
def unit(decimals):
    """One whole token, in token units."""
    return 10**decimals


@pytest.fixture(scope="module")
def scale(decimals):
    """WAD per token unit, as the Vault's `token_scale`."""
    return 10 ** (18 - decimals)


@pytest.fixture(scope="module")
def token(create_token, decimals):
    return create_token(decimals)


@pytest.fixture(scope="module")
def vault(create_vault, token, unit, deployer, controller, lp, other_lp, attacker, trader):
    """A Vault with MINT/BURN_FEE_BPS fees and COOLDOWN, `controller` authorised, and every
    actor funded with FUNDING_TOKENS and its approval to the Vault."""
    vault = create_vault(token, MINT_FEE_BPS, BURN_FEE_BPS, COOLDOWN)
    vault.set_controller(controller, True, sender=deployer)
    for actor in (lp, other_lp, attacker, trader):
        token.mint(actor, FUNDING_TOKENS * unit, sender=actor)
        token.approve(vault, 2**256 - 1, sender=actor)
    return vault


def read_batch(chain, calls) -> tuple:
    """Read many one-word views (uint256 or address) in one JSON-RPC batch round trip, at
    the latest block: a state snapshot costs one request instead of dozens."""
    payload = [
        {
            "jsonrpc": "2.0",
            "id": i,
            "method": "eth_call",
            "params": [{"to": contract.address, "data": to_hex(call_data)}, "latest"],
        }
        for i, (contract, call_data) in enumerate(
            (contract, getattr(contract, name).encode_input(*args))
            for contract, name, args in calls
        )
    ]
    response = requests.post(chain.provider.uri, json=payload, timeout=30).json()
    answers = sorted(response, key=lambda a: a["id"])
    assert all("result" in a for a in answers), answers
    return tuple(int(a["result"], 16) for a in answers)


VAULT_VIEWS = (
    "totalSupply",
    "pool_amount",
    "collateral_amount",
    "escrow_amount",
    "insurance_amount",
    "claimable_amount",
    "reserved_amount",
    "admin",
    "pending_admin",
    "mint_fee_bps",
    "burn_fee_bps",
    "cooldown",
    "pool_value_source",
)


def vault_state(chain, vault, token, accounts, allowances=()) -> dict:
    """Supply, buckets (claimable included), reserved amount, settings, the Vault's token
    balance and dead shares, each account's shares, tokens, cooldown start, controller flag
    and claimable balance, and the given (owner, spender) share allowances, read in one
    batch."""
    calls = [(vault, name, ()) for name in VAULT_VIEWS]
    labels = list(VAULT_VIEWS)
    calls += [(token, "balanceOf", (vault.address,)), (vault, "balanceOf", (DEAD,))]
    labels += ["vault tokens", "dead shares"]
    for who in accounts:
        calls += [
            (vault, "balanceOf", (who.address,)),
            (token, "balanceOf", (who.address,)),
            (vault, "last_deposit_at", (who.address,)),
            (vault, "controllers", (who.address,)),
            (vault, "claimable", (who.address,)),
        ]
        labels += [f"{who} shares", f"{who} tokens", f"{who} cooldown start", f"{who} controller"]
        labels += [f"{who} claimable"]
    for owner, spender in allowances:
        calls.append((vault, "allowance", (owner.address, spender.address)))
        labels.append(f"allowance {owner} -> {spender}")
    return dict(zip(labels, read_batch(chain, calls)))


@pytest.fixture(scope="module")
def state_of(chain):
    """`vault_state` for any vault and token (e.g. one over a special test token)."""

    def take(vault, token, *accounts, allowances=()):
        return vault_state(chain, vault, token, accounts, allowances)

    return take


@pytest.fixture(scope="module")
def snapshot(
    chain, vault, token, lp, other_lp, attacker, trader, controller, keeper, fresh_account
):
    """Everything a refused call must leave unchanged, for the module's `vault`: see
    `vault_state`; `allowances` adds (owner, spender) pairs of share allowances."""
    actors = (lp, other_lp, attacker, trader, fresh_account, controller, keeper)

    def take(allowances=()) -> dict:
        return vault_state(chain, vault, token, actors, allowances)

    return take


@pytest.fixture(scope="module")
def pool_value_source(project, deployer, vault, decimals):
    """A TestPoolValue reading `vault` (not yet set as the Vault's source)."""
    return deployer.deploy(project.TestPoolValue, vault, decimals)


@pytest.fixture(scope="module")
def pass_cooldown(chain, vault):
    def wait():
        chain.mine(deltatime=vault.cooldown())

    return wait


@pytest.fixture(scope="module")
def settle(vault, controller):
    """Call `settle` as the controller with keyword fields (all default to zero/empty)."""

    def call(sender=None, **fields):
        s = {
            "account_in": ZERO,
            "amount_in": 0,
            "pool_delta": 0,
            "collateral_delta": 0,
            "escrow_delta": 0,
            "insurance_delta": 0,
            "account_out": ZERO,
            "amount_out": 0,
            "reserved_delta": 0,
            "credit_account": ZERO,
            "credit_amount": 0,
        }
        s.update(fields)
        s = {k: (v.address if hasattr(v, "address") else v) for k, v in s.items()}
        return vault.settle(s, sender=sender or controller)

    return call


def only_from(tx, event, contract):
    """Logs of `event` emitted by `contract` (the token's Transfer shares the signature)."""
    return [log for log in tx.decode_logs(event) if log.contract_address == contract.address]


@pytest.fixture(scope="module")
def logs_of():
    return only_from


@pytest.fixture(scope="module", autouse=True)
def _module_fixtures_first(
    chain, vault, snapshot, fresh_account, new_admin, keeper, model, pool_value_source,
    pass_cooldown, settle, logs_of, unit, scale, state_of,
):
    """Set up every module- and session-scoped fixture before any function-scoped one, so
    Ape's isolation never has to rebase a snapshot (slow, and warned about)."""
