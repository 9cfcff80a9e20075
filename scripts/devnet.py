"""The main job: a local perpool devnet in one command.

    ape run devnet            # start Anvil, deploy everything, print the deployment, stop
    ape run devnet --keep     # ... and keep the devnet running until Ctrl-C

Anvil listens on 127.0.0.1:8545 (--port to change); the deployment is written to
deployments/local.json for keepers and scripts.
"""

from __future__ import annotations

import os
import signal
import threading

import click

from perpool.devnet import DevnetError, start_anvil


@click.command()
@click.option("--port", default=8545, show_default=True, help="Loopback port for Anvil.")
@click.option("--keep", is_flag=True, help="Keep the devnet running until Ctrl-C or SIGTERM.")
def cli(port: int, keep: bool) -> None:
    """Start Anvil, deploy perpool, print the deployment."""
    from ape import networks

    from perpool.deploy import DeployError, deploy_network

    try:
        anvil = start_anvil(port)
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from exc
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        os.environ["APE_FOUNDRY_HOST"] = anvil.url
        with networks.parse_network_choice("ethereum:local:foundry"):
            record, path = deploy_network()
        click.echo(f"perpool devnet on {anvil.url} (chain {record.chain_id})")
        click.echo(record.to_json().rstrip())
        click.echo(f"deployment written to {path}")
        if keep:
            click.echo("devnet running: Ctrl-C to stop")
            while not stop.wait(0.5):
                pass
    except DeployError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        signal.signal(signal.SIGTERM, previous)
        anvil.stop()
        click.echo("devnet stopped")
