"""Print gas used per operation on Anvil against GMX v1's figures.

    ape run gas
"""

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand

from perpool.gas import measure, table


@click.command(cls=ConnectedProviderCommand)
def cli() -> None:
    """Measure and print gas per operation (steady state, see perpool/gas.py)."""
    click.echo(table(measure(project, accounts.test_accounts, chain)))
