"""Deploying and wiring perpool through Ape. Used by `ape run deploy`, the devnet and tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perpool import params


@dataclass
class Protocol:
    """Handles to one deployed perpool."""

    token: Any
    oracle: Any
    vault: Any
    feeds: dict[str, Any] = field(default_factory=dict)  # market name -> OracleFeed
    markets: dict[str, int] = field(default_factory=dict)  # market name -> id
    deploy_block: int = 0

    def addresses(self) -> dict[str, str]:
        return {
            "Token": str(self.token.address),
            "Oracle": str(self.oracle.address),
            "Vault": str(self.vault.address),
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
    updaters: tuple[Any, ...] = (),
    seed_prices: bool = True,
    chain: Any = None,
) -> Protocol:
    """Deploy Oracle, Vault and one OracleFeed per market, register the markets and
    authorise `updaters` (the deployer always is one on a local network: pass it)."""
    markets = dict(params.LOCAL_MARKETS if markets is None else markets)
    config = dict(params.ORACLE_CONFIG if oracle_config is None else oracle_config)
    oracle = deployer.deploy(project.Oracle, config)
    start_block = oracle.receipt.block_number if hasattr(oracle, "receipt") else 0
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

    if seed_prices and updaters and chain is not None:
        now = chain.pending_timestamp
        oracle.set_prices(
            [ids[n] for n in markets], [markets[n] for n in markets], now, sender=updaters[0]
        )
    return Protocol(
        token=token, oracle=oracle, vault=vault, feeds=feeds, markets=ids, deploy_block=start_block
    )
