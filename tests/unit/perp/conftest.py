"""Fixtures for Perp: a whole deployed protocol (Oracle, Vault, Configurator, Perp,
RiskEngine, PerpReader) with a funded LP pool, for 6- and 18-decimal collateral.

The trading suites run with no insurance cut (`NO_CUT_RISK`), so their pool arithmetic is
the fee arithmetic alone; the risk suites build their own protocol with the defaults."""

from __future__ import annotations

import pytest

from helpers import Env, build_env


@pytest.fixture(scope="module")
def env(project, deployer, keeper, lp, chain) -> Env:
    """6-decimal collateral (the usual stablecoin)."""
    return build_env(project, deployer, keeper, lp, chain, 6)


@pytest.fixture(scope="module", params=[6, 18], ids=["6dec", "18dec"])
def env_any(request, project, deployer, keeper, lp, chain) -> Env:
    """The same protocol with 6- and 18-decimal collateral."""
    return build_env(project, deployer, keeper, lp, chain, request.param)


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
