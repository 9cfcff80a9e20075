"""Deploying and wiring perpool through Ape. Used by `ape run deploy`, the devnet and tests."""

from __future__ import annotations

import sys

from dataclasses import dataclass, field
from typing import Any

from pathlib import Path

from perpool import params
from perpool.deployments import Deployment, path_for, save


@dataclass
class Protocol:
    """Handles to one deployed perpool."""

    token: Any
    oracle: Any
    vault: Any
    perp: Any
    configurator: Any
    risk: Any  # RiskEngine (ADL)
    reader: Any  # PerpReader
    orders: Any  # OrderBook
    feeds: dict[str, Any] = field(default_factory=dict)  # market name -> OracleFeed
    markets: dict[str, int] = field(default_factory=dict)  # market name -> id
    deploy_block: int = 0

    def addresses(self) -> dict[str, str]:
        return {
            "Token": str(self.token.address),
            "Oracle": str(self.oracle.address),
            "Vault": str(self.vault.address),
            "Perp": str(self.perp.address),
            "Configurator": str(self.configurator.address),
            "RiskEngine": str(self.risk.address),
            "PerpReader": str(self.reader.address),
            "OrderBook": str(self.orders.address),
        }


def deploy_token(project: Any, deployer: Any, decimals: int = params.STABLE_DECIMALS) -> Any:
    """A test stablecoin (anyone may mint): local networks and tests only."""
    return deployer.deploy(
        project.TestToken, params.STABLE_NAME, params.STABLE_SYMBOL, decimals
    )


def deploy_protocol(
    project: Any,
    deployer: Any,
    token: Any,
    markets: dict[str, int] | None = None,
    oracle_config: dict[str, int] | None = None,
    market_config: dict[str, int] | None = None,
    risk_config: dict[str, object] | None = None,
    updaters: tuple[Any, ...] = (),
    seed_prices: bool = True,
    chain: Any = None,
    direct_fills: bool = True,
    direct_lp: bool = True,
) -> Protocol:
    """Deploy Oracle, Vault, Configurator, Perp, RiskEngine, PerpReader, OrderBook and one
    OracleFeed per market; register the markets in the Oracle and (through the
    Configurator) in Perp; make Perp and the OrderBook the Vault's controllers, Perp its
    pool value source, the Configurator its pauser and the Oracle's leverage source (which
    bounds max_jump_bps by the markets' max leverage), the RiskEngine Perp's deleverager and
    the OrderBook Perp's order book and an Oracle updater; authorise `updaters` as price
    pushers and order keepers and, with `seed_prices`, push a first price per market.
    Without `direct_fills` every market trades through the OrderBook only; without
    `direct_lp` LPs deposit and redeem through its LP orders only (`lp_orders_only`)."""
    markets = dict(params.LOCAL_MARKETS if markets is None else markets)
    config = dict(params.ORACLE_CONFIG if oracle_config is None else oracle_config)
    start_block = chain.blocks.head.number + 1 if chain is not None else 0
    oracle = deployer.deploy(project.Oracle, config)
    vault = deployer.deploy(project.Vault, token.address, params.VAULT_NAME, params.VAULT_SYMBOL)
    vault.set_fees(params.MINT_FEE_BPS, params.BURN_FEE_BPS, sender=deployer)
    vault.set_cooldown(params.COOLDOWN, sender=deployer)

    ids: dict[str, int] = {}
    for name in markets:
        tx = oracle.add_market(name, sender=deployer)
        ids[name] = tx.return_value if tx.return_value else oracle.market_count()
    for account in updaters:
        oracle.set_updater(account, True, sender=deployer)
    feeds = {name: deployer.deploy(project.OracleFeed, oracle.address, ids[name]) for name in ids}

    configurator = deployer.deploy(project.Configurator, oracle.address, vault.address)
    perp = deployer.deploy(project.Perp, oracle.address, vault.address, configurator.address)
    configurator.set_perp(perp.address, sender=deployer)
    risk = deployer.deploy(project.RiskEngine, perp.address, vault.address, configurator.address)
    configurator.set_deleverager(risk.address, sender=deployer)
    reader = deployer.deploy(project.PerpReader, perp.address)
    orders = deployer.deploy(project.OrderBook, perp.address, params.MIN_EXECUTION_FEE)
    configurator.set_order_book(orders.address, sender=deployer)
    oracle.set_updater(orders.address, True, sender=deployer)
    vault.set_controller(perp.address, True, sender=deployer)
    vault.set_controller(orders.address, True, sender=deployer)
    for account in updaters:
        orders.set_keeper(account, True, sender=deployer)
    vault.set_pool_value_source(perp.address, sender=deployer)
    vault.set_pauser(configurator.address, sender=deployer)
    if not direct_fills:
        configurator.set_new_markets_direct_fills(False, sender=deployer)
    if not direct_lp:
        vault.set_lp_orders_only(True, sender=deployer)
    for name in ids:
        configurator.add_market(
            ids[name],
            dict(market_config or params.MARKET_CONFIG),
            dict(risk_config or params.RISK_CONFIG),
            sender=deployer,
        )
    # from here the Oracle refuses a max_jump_bps above the initial margin of the highest
    # max leverage, and the Configurator a max leverage whose margin is below the jump
    oracle.set_leverage_source(configurator.address, sender=deployer)

    if seed_prices and updaters and chain is not None:
        now = chain.pending_timestamp
        oracle.set_prices(
            [ids[n] for n in markets], [markets[n] for n in markets], now, sender=updaters[0]
        )
    return Protocol(
        token=token,
        oracle=oracle,
        vault=vault,
        perp=perp,
        configurator=configurator,
        risk=risk,
        reader=reader,
        orders=orders,
        feeds=feeds,
        markets=ids,
        deploy_block=start_block,
    )


LOCAL_CHAIN_IDS = {31337, 1337}


class DeployError(RuntimeError):
    """A deploy that cannot start: missing account, token or funds."""


PASSPHRASE_ENV = "APE_ACCOUNTS_{alias}_PASSPHRASE"  # Ape's own variable for a keyfile account


def load_account(alias: str) -> Any:
    """An Ape account by alias, unlocked for signing without prompts when its passphrase is
    in APE_ACCOUNTS_<alias>_PASSPHRASE (what a non-interactive deploy needs)."""
    import os

    from ape import accounts
    from ape.exceptions import AccountsError

    if alias not in accounts.aliases:
        raise DeployError(f"no Ape account named {alias!r}: add one with `ape accounts import {alias}`")
    account = accounts.load(alias)
    variable = PASSPHRASE_ENV.format(alias=alias)
    passphrase = os.environ.get(variable)
    if passphrase is None:
        if not sys.stdin.isatty():
            raise DeployError(f"account {alias!r} is locked: set {variable} to its passphrase for a non-interactive deploy")
        return account  # a person at a terminal: Ape prompts
    try:
        account.set_autosign(True, passphrase=passphrase)
    except AccountsError as exc:
        raise DeployError(f"cannot unlock account {alias!r} with {variable}: {exc}") from exc
    return account


def deploy_network(
    account_alias: str | None = None,
    token_address: str | None = None,
    out: "Path | None" = None,
) -> "tuple[Deployment, Path]":
    """Deploy everything on Ape's connected network and write the deployment file.

    On a local network (chain id 31337) it also deploys a test stablecoin, makes the
    deployer a price updater and order keeper and seeds the markets' first prices. Off a
    local network direct fills and direct LP flows are switched off: every trade, deposit
    and redeem goes through the OrderBook.
    """
    from ape import accounts, chain, networks, project

    local = chain.chain_id in LOCAL_CHAIN_IDS
    if account_alias:
        deployer = load_account(account_alias)
    elif local:
        deployer = accounts.test_accounts[0]
    else:
        raise DeployError("--account is required off a local network")
    if deployer.balance == 0:
        raise DeployError(f"deployer {deployer.address} has no funds on this network")

    if token_address:
        token = project.TestToken.at(token_address)
    elif local:
        token = deploy_token(project, deployer)
    else:
        raise DeployError("--token (the pool's stablecoin) is required off a local network")

    protocol = deploy_protocol(
        project,
        deployer,
        token,
        markets=params.LOCAL_MARKETS,
        updaters=(deployer,) if local else (),
        seed_prices=local,
        chain=chain,
        direct_fills=local,
        direct_lp=local,
    )
    network_name = networks.provider.network.name
    record = Deployment(
        network=network_name,
        chain_id=chain.chain_id,
        deploy_block=protocol.deploy_block,
        contracts=protocol.addresses(),
        markets=protocol.markets,
        feeds={name: str(feed.address) for name, feed in protocol.feeds.items()},
    )
    path = save(record, out or path_for(network_name))
    return record, path
