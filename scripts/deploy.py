"""Deploy perpool and write `deployments/<network>.json`.

    ape run deploy --network ethereum:local:foundry
    ape run deploy --network ethereum:sepolia:node --account <alias> --token <stablecoin>

On a local network it also deploys a test stablecoin, registers the ETH and BTC markets,
makes the deployer a price updater and seeds a first price per market. Elsewhere direct
fills are off (every trade goes through the OrderBook), and `--account` is required: a
keyfile account is unlocked from APE_ACCOUNTS_<alias>_PASSPHRASE when that is set (a
non-interactive run), else Ape prompts at a terminal.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand

from perpool.deploy import DeployError, deploy_network


@click.command(cls=ConnectedProviderCommand)
@click.option("--account", "account_alias", default=None, help="Ape account alias (required off a local network).")
@click.option("--token", "token_address", default=None, help="The pool's stablecoin (a test token is deployed locally).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Deployment file (default deployments/<network>.json).")
def cli(account_alias: str | None, token_address: str | None, out: Path | None) -> None:
    """Deploy perpool and write its deployment file."""
    try:
        record, path = deploy_network(account_alias, token_address, out)
    except DeployError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"perpool deployed on {record.network} (chain {record.chain_id})")
    click.echo(record.to_json().rstrip())
    click.echo(f"written to {path}")
