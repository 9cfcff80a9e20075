"""perpool at the Ape console prompt: the deployed contracts and helpers for a person.

`ape_console_extras.py` (the project root) puts `load()`'s names into `ape console`'s
namespace: oracle, vault, perp, token, configurator, risk, reader, orders, markets, plus
the helpers below. Amounts are in whole dollars and prices in dollars (floats are fine);
markets by name ("ETH") or id. Where a market's direct fills are off, `open_position` and
`close_position` place market orders and, on a devnet, push a newer price and execute
them; where the Vault takes LP orders only, `deposit` and `redeem` do the same with LP
orders (a newer price of every market), so the same commands work on both kinds of
network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from perpool import params
from perpool.deployments import DeploymentError, load as load_deployment, path_for
from perpool.prices import push_stepped

WAD = params.WAD
MAX_UINT = 2**256 - 1
LOCAL_CHAIN_IDS = (31337, 1337)
DEPLOYMENT_ENV = "PERPOOL_DEPLOYMENT"  # overrides deployments/<network>.json
MARKET_INCREASE, MARKET_DECREASE = 0, 2


def _wad(dollars: float) -> int:
    return int(round(dollars * 10**6)) * 10**12


class Console:
    """One deployed protocol and the helpers bound to it."""

    def __init__(self, deployment_path: Path | None = None) -> None:
        from ape import accounts, chain, networks, project

        self.chain = chain
        network = networks.provider.network.name
        path = deployment_path or Path(os.environ.get(DEPLOYMENT_ENV) or path_for(network))
        record = load_deployment(path)
        if record.chain_id != chain.chain_id:
            raise DeploymentError(
                f"{path} is for chain {record.chain_id}, the console is on chain {chain.chain_id}"
            )
        c = record.contracts
        self.oracle = project.Oracle.at(c["Oracle"])
        self.vault = project.Vault.at(c["Vault"])
        self.perp = project.Perp.at(c["Perp"])
        self.token = project.TestToken.at(c["Token"])
        self.configurator = project.Configurator.at(c["Configurator"])
        self.risk = project.RiskEngine.at(c["RiskEngine"])
        self.reader = project.PerpReader.at(c["PerpReader"])
        self.orders = project.OrderBook.at(c["OrderBook"])
        self.markets: dict[str, int] = dict(record.markets)
        self.local = chain.chain_id in LOCAL_CHAIN_IDS
        self.unit = 10 ** self.token.decimals()
        self._updater = accounts.test_accounts[0] if self.local else None
        self.path = path

    # ------------------------------------------------------------ lookups

    def market(self, market: str | int) -> int:
        if isinstance(market, int):
            return market
        try:
            return self.markets[market.upper()]
        except KeyError:
            raise ValueError(f"unknown market {market!r}: one of {', '.join(self.markets)}") from None

    def tokens(self, dollars: float) -> int:
        return int(round(dollars * self.unit))

    def dollars(self, units: int) -> float:
        return units / self.unit

    # ------------------------------------------------------------ money

    def fund(self, account: Any, dollars: float = 100_000) -> None:
        """Devnet only: mint test dollars to `account` and approve the Vault."""
        self._local_only("fund")
        self.token.mint(account, self.tokens(dollars), sender=account)
        self.token.approve(self.vault.address, MAX_UINT, sender=account)

    def deposit(self, account: Any, dollars: float) -> int:
        """LP deposit; returns the shares minted (approve the Vault first, or `fund`). With
        LP orders only, a deposit order: filled at once on a devnet (a newer price of every
        market pushed first), else left to a keeper (returns 0)."""
        amount = self.tokens(dollars)
        if not self.vault.lp_orders_only():
            return self.vault.deposit(amount, 0, account, sender=account).return_value
        before = self.vault.balanceOf(account)
        fee = self.orders.min_execution_fee()
        self._fill_lp_order(self.orders.create_deposit_order(amount, 0, fee, sender=account).return_value)
        return self.vault.balanceOf(account) - before

    def redeem(self, account: Any, shares: int | None = None) -> int:
        """Redeem `shares` (all of the account's by default); returns tokens paid. With LP
        orders only, a redeem order whose tokens are credited (`claim` them); filled at once
        on a devnet, else left to a keeper (returns 0)."""
        shares = self.vault.balanceOf(account) if shares is None else shares
        if not self.vault.lp_orders_only():
            return self.vault.redeem(shares, 0, account, sender=account).return_value
        before = self.vault.claimable(account)
        fee = self.orders.min_execution_fee()
        self._fill_lp_order(self.orders.create_redeem_order(shares, 0, fee, sender=account).return_value)
        return self.vault.claimable(account) - before

    def claim(self, account: Any) -> int:
        """Pay out what the Vault credited the account (order payouts, refunds, fees)."""
        return self.vault.claim(account, sender=account).return_value

    # ------------------------------------------------------------ trading

    def open_position(self, account: Any, market: str | int, is_long: bool, collateral: float, size: float) -> Any:
        """Open or grow a position: `collateral` and `size` in dollars, at the oracle price."""
        m = self.market(market)
        worst = MAX_UINT if is_long else 0
        if self.perp.direct_fills(m):
            return self.perp.increase_position(m, is_long, self.tokens(collateral), _wad(size), worst, sender=account)
        return self._through_order(account, m, MARKET_INCREASE, is_long, self.tokens(collateral), _wad(size), worst)

    def close_position(self, account: Any, market: str | int, is_long: bool) -> Any:
        """Close the whole position at the oracle price (payouts of orders are credited:
        `claim` them)."""
        m = self.market(market)
        size = self.perp.get_position(account, m, is_long).size_usd
        if size == 0:
            raise ValueError("no position to close")
        worst = 0 if is_long else MAX_UINT
        if self.perp.direct_fills(m):
            return self.perp.decrease_position(m, is_long, 0, size, worst, account, sender=account)
        return self._through_order(account, m, MARKET_DECREASE, is_long, 0, size, worst)

    def _through_order(self, account: Any, m: int, kind: int, is_long: bool, collateral: int, size: int, worst: int) -> Any:
        fee = self.orders.min_execution_fee()
        tx = self.orders.create_order(m, kind, is_long, collateral, size, worst, 0, fee, sender=account)
        order_id = tx.return_value
        if not self.local:
            print(f"order {order_id} placed; a keeper fills it at the next price")
            return tx
        self.push_price(m, self.price(m))  # a newer observation of the same price
        return self.orders.execute_orders([order_id], self._updater, sender=self._updater)

    def _fill_lp_order(self, order_id: int) -> None:
        if not self.local:
            print(f"LP order {order_id} placed; a keeper fills it once every market has a newer price")
            return
        # a newer observation of every market at its stored price, then the fill
        stored = {m: self.oracle.price_data(m).price for m in self.markets.values()}
        push_stepped(self.oracle, self.chain, self._updater, stored)
        tx = self.orders.execute_orders([order_id], self._updater, sender=self._updater)
        for log in tx.decode_logs(self.orders.OrderCancelled):
            raise RuntimeError(f"LP order {order_id} cancelled: {log.reason}")

    # ------------------------------------------------------------ prices

    def price(self, market: str | int) -> float:
        """The stored keeper price, dollars."""
        return self.oracle.price_data(self.market(market)).price / WAD

    def push_price(self, market: str | int, dollars: float) -> Any:
        """Devnet only: push a price observed one second after the last; a move beyond the
        Oracle's jump bound (`max_jump_bps`, 2 % by default) is stepped through it, one push a
        second (perpool.prices.push_stepped). Returns the time of the last push."""
        self._local_only("push_price")
        m = self.market(market)
        return push_stepped(self.oracle, self.chain, self._updater, {m: _wad(dollars)})

    # ------------------------------------------------------------ reading

    def position(self, account: Any, market: str | int, is_long: bool) -> dict[str, float]:
        """A position's size, collateral, entry and mark price, PnL, pending fees, leverage
        and liquidation price, in dollars (PerpReader.position_info)."""
        info = self.reader.position_info(account, self.market(market), is_long)
        return {
            "size": info.size_usd / WAD,
            "collateral": self.dollars(info.collateral),
            "entry_price": info.entry_price / WAD,
            "mark_price": info.mark_price / WAD,
            "pnl": info.pnl / WAD,
            "borrowing_fee": info.pending_borrowing_fee / WAD,
            "funding": info.pending_funding / WAD,
            "close_fee": info.close_fee / WAD,
            "remaining": info.remaining_collateral / WAD,
            "maintenance": info.maintenance_margin / WAD,
            "leverage": info.leverage_bps / 10_000 if info.size_usd else 0.0,
            "liquidation_price": info.liquidation_price / WAD,
            "liquidatable": bool(info.is_liquidatable),
        }

    def show_position(self, account: Any, market: str | int, is_long: bool) -> None:
        p = self.position(account, market, is_long)
        if p["size"] == 0:
            print("no position")
            return
        side = "long" if is_long else "short"
        print(f"{side} {market}: size ${p['size']:,.2f} at ${p['entry_price']:,.2f}, mark ${p['mark_price']:,.2f}")
        print(f"  collateral ${p['collateral']:,.2f}, leverage {p['leverage']:.2f}x")
        print(f"  PnL ${p['pnl']:,.2f}, borrowing ${p['borrowing_fee']:,.4f}, funding ${p['funding']:,.4f}, close fee ${p['close_fee']:,.2f}")
        print(f"  remaining ${p['remaining']:,.2f} vs maintenance ${p['maintenance']:,.2f}")
        print(f"  liquidation price ${p['liquidation_price']:,.2f}{' (LIQUIDATABLE)' if p['liquidatable'] else ''}")

    def rates(self, market: str | int) -> dict[str, float]:
        """Borrowing and funding per hour and per year, in percent (> 0: the side receives)."""
        r = self.reader.rates(self.market(market))
        pct = 100 / WAD
        return {
            "borrowing_per_hour": r.borrowing_rate_per_hour * pct,
            "borrowing_per_year": r.borrowing_rate_per_year * pct,
            "funding_long_per_hour": r.funding_rate_long_per_hour * pct,
            "funding_short_per_hour": r.funding_rate_short_per_hour * pct,
        }

    def show_market(self, market: str | int) -> None:
        m = self.market(market)
        r = self.rates(m)
        long_usd, _ = self.perp.open_interest(m, True)
        short_usd, _ = self.perp.open_interest(m, False)
        print(f"market {market} (id {m}): price ${self.price(m):,.2f}, direct fills {'on' if self.perp.direct_fills(m) else 'off'}")
        print(f"  open interest: long ${long_usd / WAD:,.2f}, short ${short_usd / WAD:,.2f}")
        print(f"  borrowing {r['borrowing_per_hour']:.6f} %/h ({r['borrowing_per_year']:.3f} %/yr)")
        print(f"  funding long {r['funding_long_per_hour']:+.6f} %/h, short {r['funding_short_per_hour']:+.6f} %/h")

    def _local_only(self, what: str) -> None:
        if not self.local:
            raise RuntimeError(f"{what} works on a local devnet only")


def load(deployment_path: Path | None = None) -> dict[str, Any]:
    """The console namespace: contracts, markets and helpers (empty, with a hint, when the
    connected network has no deployment file)."""
    try:
        c = Console(deployment_path)
    except DeploymentError as exc:
        print(f"perpool: {exc} (deploy first: `make devnet ARGS=--keep`, or set {DEPLOYMENT_ENV})")
        return {}
    print(f"perpool: {c.path.name} loaded; try show_market('ETH') or help(open_position)")
    names = (
        "oracle", "vault", "perp", "token", "configurator", "risk", "reader", "orders", "markets",
        "fund", "deposit", "redeem", "claim", "open_position", "close_position", "price",
        "push_price", "position", "show_position", "rates", "show_market",
    )
    namespace = {name: getattr(c, name) for name in names}
    namespace["perpool"] = c
    return namespace
