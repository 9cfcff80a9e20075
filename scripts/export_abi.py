"""Write the committed ABI export, `abi/<Contract>.json`, from the compiled contracts.

    ape run export_abi

A test keeps the export equal to the compiled contracts, so keepers and outside tools need
neither Ape nor a build step.
"""

from __future__ import annotations

import click
from ape import project

from perpool.abi import DEPLOYABLES, abi_json
from perpool.deployments import ABI_DIR


@click.command()
def cli() -> None:
    """Export the ABI of every deployable to abi/."""
    ABI_DIR.mkdir(exist_ok=True)
    for name in DEPLOYABLES:
        path = ABI_DIR / f"{name}.json"
        path.write_text(abi_json(getattr(project, name).contract_type))
        click.echo(f"wrote {path}")
