"""Fixtures for the keepers: a deployed protocol on the test Anvil, its deployment file, and
keeper settings pointing at that Anvil over HTTP (the keepers are plain web3 clients; Ape
only deploys and drives the scenario).

The keeper signs with Anvil's dev account 9 (`KEEPER_KEY`), made a price updater here, so
its local nonce never races Ape's test accounts 0 to 8."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keepers.log import Log
from keepers.metrics import Metrics
from keepers.settings import KeeperSettings, load_settings
from perpool.deploy import deploy_protocol
from perpool.deployments import Deployment, save

KEEPER_INDEX = 9
KEEPER_KEY = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"


@pytest.fixture(scope="module")
def keeper_account(accounts):
    return accounts[KEEPER_INDEX]


def deploy_pool(project: Any, chain: Any, deployer: Any, updaters: tuple[Any, ...], lp: Any,
                **options: Any) -> Any:
    """The whole protocol with a $1M pool (6-decimal collateral); `updaters` may push prices
    and execute orders as keepers. `options` go to `deploy_protocol` (`direct_fills=False`:
    every trade through the OrderBook)."""
    token = deployer.deploy(project.TestToken, "Test USD", "tUSD", 6)
    p = deploy_protocol(project, deployer, token, updaters=updaters, chain=chain, **options)
    token.mint(lp, 2_000_000 * 10**6, sender=lp)
    token.approve(p.vault.address, 2**256 - 1, sender=lp)
    p.vault.deposit(1_000_000 * 10**6, 0, lp, sender=lp)
    return p


@pytest.fixture(scope="module")
def protocol(project, chain, deployer, keeper, lp, keeper_account):
    """The whole protocol with a $1M pool; `keeper` and the keeper daemon's account may push
    prices and execute orders."""
    return deploy_pool(project, chain, deployer, (keeper, keeper_account), lp)


@pytest.fixture(scope="module")
def deployment_file(protocol, chain, tmp_path_factory) -> Path:
    record = Deployment(
        network="local",
        chain_id=chain.chain_id,
        deploy_block=protocol.deploy_block,
        contracts={"Token": str(protocol.token.address), **protocol.addresses()},
        markets=protocol.markets,
        feeds={n: str(f.address) for n, f in protocol.feeds.items()},
    )
    return save(record, tmp_path_factory.mktemp("deploy") / "local.json")


@pytest.fixture(scope="module")
def rpc_url(chain) -> str:
    return chain.provider.http_uri


@pytest.fixture
def settings(rpc_url, deployment_file, tmp_path) -> KeeperSettings:
    """Settings for a keeper under test: this Anvil, this deployment, the keeper key, a
    private state directory, no metrics server, fast polling."""
    return load_settings(
        rpc_urls=[rpc_url],
        deployment=deployment_file,
        private_key=KEEPER_KEY,
        state_dir=tmp_path / "state",
        metrics_port=0,
        poll_interval_s=0.05,
        stuck_after_s=5.0,
        receipt_timeout_s=30.0,
        rpc_backoff_s=0.05,
    )


@pytest.fixture
def log(capsys) -> Log:
    return Log("test")


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def dollars(amount: float) -> int:
    """Token units of the 6-decimal test stablecoin."""
    return int(amount * 10**6)


def fund(protocol: Any, account: Any, amount_usd: int = 1_000_000) -> None:
    protocol.token.mint(account, dollars(amount_usd), sender=account)
    protocol.token.approve(protocol.vault.address, 2**256 - 1, sender=account)


@pytest.fixture
def markets(protocol):
    """The ETH and BTC market ids of the module's `protocol`."""
    return protocol.markets["ETH"], protocol.markets["BTC"]


@pytest.fixture
def fresh(protocol, chain, keeper, markets):
    """Fresh prices at $3,000 and $60,000, pushed by the price keeper (Ape's `keeper`)."""
    from liquidator_scene import WAD, push

    eth, btc = markets
    push(protocol, chain, keeper, {eth: 3_000 * WAD, btc: 60_000 * WAD})
