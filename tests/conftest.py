"""Shared fixtures: role-named accounts and builders for tokens, oracles and vaults.

Ape isolates every test in a chain snapshot, so module- and session-scoped deploys are
reverted back to their state at the start of each test.
"""

from __future__ import annotations

import pytest

from perpool import params

WAD = params.WAD


@pytest.fixture(scope="session")
def deployer(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def keeper(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def lp(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def other_lp(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def trader(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def attacker(accounts):
    return accounts[5]


@pytest.fixture(scope="session")
def controller(accounts):
    """An account authorised to call Vault.settle, standing in for Perp."""
    return accounts[6]


@pytest.fixture(scope="session")
def create_token(project, deployer):
    def create(decimals: int = 6):
        return deployer.deploy(project.TestToken, "Test USD", "tUSD", decimals)

    return create


@pytest.fixture(scope="session")
def create_oracle(project, deployer, keeper):
    def create(config: dict | None = None, markets: tuple[str, ...] = ("ETH", "BTC")):
        oracle = deployer.deploy(project.Oracle, dict(config or params.ORACLE_CONFIG))
        for name in markets:
            oracle.add_market(name, sender=deployer)
        oracle.set_updater(keeper, True, sender=deployer)
        return oracle

    return create


@pytest.fixture(scope="module")
def oracle(create_oracle):
    return create_oracle()


@pytest.fixture(scope="session")
def create_vault(project, deployer):
    def create(token, mint_fee_bps: int = 0, burn_fee_bps: int = 0, cooldown: int = 0):
        vault = deployer.deploy(project.Vault, token.address, "perpool LP", "PLP")
        vault.set_fees(mint_fee_bps, burn_fee_bps, sender=deployer)
        vault.set_cooldown(cooldown, sender=deployer)
        return vault

    return create


@pytest.fixture(scope="session", autouse=True)
def _session_fixtures_first(
    deployer, keeper, lp, other_lp, trader, attacker, controller, create_token, create_oracle, create_vault
):
    """Create every session-scoped fixture before any test: one first requested inside a
    module makes Ape rebase its isolation snapshots, which can leak one module's chain
    state into the next. None of these touches the chain."""


@pytest.fixture(autouse=True)
def _no_stale_timestamp_pin(chain):
    """A test that pins the next block's timestamp and then only sends reverting calls
    leaves the pin set; after Ape reverts the chain it could fall behind the head.
    Start every test with a pin no lower than the head."""
    head = chain.blocks.head.timestamp
    if chain.pending_timestamp < head:
        chain.pending_timestamp = head
