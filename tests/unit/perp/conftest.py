"""Fixtures for Perp: a whole deployed protocol (Oracle, Vault, Perp) with a funded LP pool,
for 6- and 18-decimal collateral."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from perpool import params
from perpool.deploy import deploy_protocol

WAD = params.WAD
LP_DEPOSIT_USD = 1_000_000  # whole dollars the LP seeds the pool with
TRADER_FUNDS_USD = 1_000_000


@dataclass
class Env:
    """One deployed protocol plus the helpers tests need."""

    token: Any
    oracle: Any
    vault: Any
    perp: Any
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
        """Push `price` (WAD) for `market`, observed now."""
        return self.oracle.set_prices([market], [price], self.chain.pending_timestamp, sender=self.keeper)

    def fund(self, account: Any, dollars: int = TRADER_FUNDS_USD) -> None:
        self.token.mint(account, self.usd(dollars), sender=account)
        self.token.approve(self.vault.address, 2**256 - 1, sender=account)


def _build(project, deployer, keeper, lp, chain, decimals: int) -> Env:
    token = deployer.deploy(project.TestToken, "Test USD", "tUSD", decimals)
    p = deploy_protocol(project, deployer, token, updaters=(keeper,), chain=chain)
    env = Env(
        token=token, oracle=p.oracle, vault=p.vault, perp=p.perp, markets=p.markets,
        keeper=keeper, chain=chain, unit=10**decimals, scale=10 ** (18 - decimals),
    )
    env.fund(lp, LP_DEPOSIT_USD * 2)
    p.vault.deposit(env.usd(LP_DEPOSIT_USD), 0, lp, sender=lp)
    return env


@pytest.fixture(scope="module")
def env(project, deployer, keeper, lp, chain) -> Env:
    """6-decimal collateral (the usual stablecoin)."""
    return _build(project, deployer, keeper, lp, chain, 6)


@pytest.fixture(scope="module", params=[6, 18], ids=["6dec", "18dec"])
def env_any(request, project, deployer, keeper, lp, chain) -> Env:
    """The same protocol with 6- and 18-decimal collateral."""
    return _build(project, deployer, keeper, lp, chain, request.param)


@pytest.fixture(scope="module")
def funded_trader(env, trader):
    env.fund(trader)
    return trader


@pytest.fixture(scope="module")
def counterparty(env, accounts):
    """A second trader, usually on the other side."""
    env.fund(accounts[7])
    return accounts[7]


@pytest.fixture(scope="module")
def hedger(env, accounts):
    """A third trader."""
    env.fund(accounts[8])
    return accounts[8]
