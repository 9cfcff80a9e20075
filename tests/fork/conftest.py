"""Fixtures for the fork suite: the upstream (a public Sepolia RPC from
PERPOOL_FORK_RPC_URL, or a stand-in Anvil this run starts and deploys perpool to, once per
session), and per module a fork of it: Ape's `ethereum:sepolia-fork` network on the
Foundry provider, its upstream set from here through provider settings (nothing in
ape-config.yaml names a URL).

The fork is a module fixture: it replaces the session's local network only while its
module runs (Ape snapshots the local chain before and restores it after), and its Anvil is
stopped at the module's end. Inside, Ape isolates every test with snapshots of the fork.
Whatever process-wide state a module changes (Ape's data folder, providers and network
settings, the environment, the working directory) is restored when it ends
(`fork_scene.ape_globals_restored`); the session's upstream fixture switches Ape's data
folder only while it deploys.

Module fixtures are named `fork_*`: Ape tracks fixtures by name across the session (it
records whether one changed the chain from the block heights around its first set-up
and tear-down), and a fork fixture measured on the fork must not stand for a local one of
the same name (the keeper suite's `protocol`)."""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import ape
import pytest

from perpool.deploy import Protocol
from perpool.devnet import stop_process

from fork_scene import (
    RPC_ENV,
    SEPOLIA,
    Upstream,
    ape_data_folder,
    endpoint,
    fresh_account,
    public_upstream,
    standin_upstream,
)


@dataclass
class Fork:
    provider: Any  # Ape's FoundryForkProvider
    url: str  # the fork's own RPC URL
    block: int  # the upstream block it was taken at
    info: dict  # anvil_nodeInfo at the start


@ape.fixture(scope="session", chain_isolation=False)
def ape_data(tmp_path_factory) -> Any:
    """Ape's data folder while it works on Sepolia or the fork (see `ape_data_folder`): set
    only while the stand-in is deployed to and while a fork module runs."""
    return tmp_path_factory.mktemp("ape-data")


@ape.fixture(scope="session", chain_isolation=False)
def upstream(tmp_path_factory, ape_data) -> Iterator[Upstream]:
    """The network forked: PERPOOL_FORK_RPC_URL, else the stand-in (started, deployed to,
    stopped at the session's end). Never touches the session's local chain."""
    url = os.environ.get(RPC_ENV, "").strip()
    if url:
        yield public_upstream(url)
        return
    mnemonic = ape.config.get_config("test").mnemonic
    workdir = tmp_path_factory.mktemp("upstream")
    with standin_upstream(workdir, mnemonic, ape_data) as standin:
        yield standin


@pytest.fixture(scope="module")
def fork(upstream, ape_data, networks) -> Iterator[Fork]:
    """`ethereum:sepolia-fork:foundry` forking `upstream`, on a port of its own (`host:
    auto`, given here too, and APE_FOUNDRY_HOST ignored while it starts: either could
    otherwise point the "fork" at a running node, the upstream included). Ape's data folder
    is the session's temporary one and every global is restored at the module's end, after
    the fork's Anvil is stopped (`ape_data_folder`)."""
    settings = {"host": "auto", "fork": {"ethereum": {"sepolia": {"upstream_provider": upstream.url}}}}
    process = None
    try:
        with ExitStack() as stack:
            stack.enter_context(ape_data_folder(ape_data))
            with pytest.MonkeyPatch.context() as env:
                env.delenv("APE_FOUNDRY_HOST", raising=False)
                provider = stack.enter_context(
                    networks.ethereum.sepolia_fork.use_provider(
                        "foundry", provider_settings=settings, disconnect_after=True
                    )
                )
            process = provider.process
            if endpoint(provider.uri) == endpoint(upstream.url):
                pytest.fail(f"the fork's RPC {provider.uri} is the upstream's: refusing to send anything")
            if process is None:  # Ape attaches to a node already listening on the port it picked
                pytest.fail(f"the fork's RPC {provider.uri} is a node this run did not start")
            assert provider.chain_id == SEPOLIA
            info = provider.make_request("anvil_nodeInfo", [])
            yield Fork(provider, provider.uri, int(info["forkConfig"]["forkBlockNumber"]), info)
    finally:
        if process is not None:  # Ape stopped it when disconnecting: reap it (or stop it)
            stop_process(process)


@pytest.fixture(scope="module")
def fork_protocol(fork, upstream, project) -> Protocol:
    """Ape handles, on the fork, to what the deployment file lists upstream."""
    d = upstream.deployment
    c = d.contracts
    return Protocol(
        token=project.TestToken.at(c["Token"]),
        oracle=project.Oracle.at(c["Oracle"]),
        vault=project.Vault.at(c["Vault"]),
        perp=project.Perp.at(c["Perp"]),
        configurator=project.Configurator.at(c["Configurator"]),
        risk=project.RiskEngine.at(c["RiskEngine"]),
        reader=project.PerpReader.at(c["PerpReader"]),
        orders=project.OrderBook.at(c["OrderBook"]),
        feeds={name: project.OracleFeed.at(address) for name, address in d.feeds.items()},
        markets=dict(d.markets),
        deploy_block=d.deploy_block,
    )


@pytest.fixture(scope="module")
def fork_keeper(fork, fork_protocol, accounts) -> Any:
    """A fresh account made an order keeper and a price updater on the fork only, by the
    OrderBook's and the Oracle's admins as the deployment has them (impersonated: on a
    public network the test does not hold their keys)."""
    keeper = fresh_account(accounts, fork.provider)
    fork_protocol.orders.set_keeper(keeper, True, sender=accounts[fork_protocol.orders.admin()])
    fork_protocol.oracle.set_updater(keeper, True, sender=accounts[fork_protocol.oracle.admin()])
    return keeper


@pytest.fixture(scope="module", autouse=True)
def _fork_fixtures_first(fork, fork_protocol, fork_keeper):
    """The module fixtures before any test (Ape's isolation never rebases a snapshot)."""


@pytest.fixture
def new_account(accounts, fork) -> Callable[[], Any]:
    """Fresh accounts, funded with ETH on the fork only."""
    return lambda: fresh_account(accounts, fork.provider)
