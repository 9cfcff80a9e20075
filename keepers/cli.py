"""`perpool-keeper`: run the keepers as long-lived daemons.

    perpool-keeper prices|liquidator|adl|orders|all [--config keeper.toml] [--rpc-url URL ...]
                   [--deployment deployments/local.json] [--metrics-port 9464]

Settings come from the flags, over `PERPOOL_*` environment variables, over the TOML file
(see keepers/settings.py). Exit codes: 0 after a clean stop (SIGINT/SIGTERM), 1 when the
failure budget ran out, 2 for a bad setting or an unusable chain (with the reason on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from keepers.chain import Chain, ChainError
from keepers.lifecycle import Runner
from keepers.log import Log
from keepers.metrics import Metrics
from keepers.settings import KeeperSettings, SettingsError, load_settings

COMMANDS = ("prices", "liquidator", "adl", "orders", "all")


def build_keepers(command: str, chain: Chain, settings: KeeperSettings, log: Log, metrics: Metrics) -> list[Any]:
    """The keeper objects one command runs (imported lazily: each has its own module). In
    `all` the order keeper pushes prices with the pusher's source and decisions; run alone
    it does so with `orders_push_prices`, from a pusher of its own."""
    keepers: list[Any] = []
    pusher = None
    if command in ("prices", "all"):
        from keepers.pusher import PricePusher

        pusher = PricePusher.from_settings(chain, settings, log, metrics)
        keepers.append(pusher)
    if command in ("liquidator", "all"):
        from keepers.liquidator import Liquidator

        keepers.append(Liquidator(chain, settings, log, metrics))
    if command in ("adl", "all"):
        from keepers.adl import AdlKeeper

        keepers.append(AdlKeeper(chain, settings, log, metrics))
    if command in ("orders", "all"):
        from keepers.orders import OrderKeeper

        own = pusher is None and settings.orders_push_prices
        if own:
            from keepers.pusher import PricePusher

            pusher = PricePusher.from_settings(chain, settings, log, metrics)
        keepers.append(OrderKeeper(chain, settings, log, metrics, prices=pusher, start_prices=own))
    return keepers


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="perpool-keeper", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("--config", type=Path, help="a TOML settings file")
    parser.add_argument("--rpc-url", action="append", dest="rpc_urls", help="RPC URL (repeat for fallbacks)")
    parser.add_argument("--deployment", type=Path, help="the deployment file (deployments/<network>.json)")
    parser.add_argument("--metrics-port", type=int, help="loopback port for metrics (0: none)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    log = Log(args.command)
    overrides = {k: v for k, v in vars(args).items() if k not in ("command", "config") and v is not None}
    try:
        settings = load_settings(args.config, **overrides)
        metrics = Metrics()
        chain = Chain(settings, log, metrics)
        keepers = build_keepers(args.command, chain, settings, log, metrics)
    except (SettingsError, ChainError) as exc:
        print(f"perpool-keeper: {exc}", file=sys.stderr)
        return 2
    if settings.metrics_port:
        port = metrics.serve(settings.metrics_port)
        log("metrics", url=f"http://127.0.0.1:{port}/metrics")
    runner = Runner(keepers, log, metrics, settings.poll_interval_s, settings.failure_budget, chain.stopping)
    runner.install_signals()
    log("start", command=args.command, chain_id=chain.chain_id, account=chain.account.address, rpc=chain.url)
    try:
        return runner.run()
    finally:
        metrics.close()


if __name__ == "__main__":
    sys.exit(main())
