"""The crowd: LPs and traders who use the protocol the way people would, through the
OrderBook (market orders to open and close, stop-losses), never by direct fills.

`plan_crowd` is pure and seeded (addresses, markets, sides, collateral, leverage). `Crowd`
acts on the devnet: it funds and approves every trader once, places the orders and follows
their fate by the OrderBook's events. What happens to an order after it is placed is the
keepers' business: the crowd only ever places and cancels.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak, to_checksum_address
from web3.logs import DISCARD

from perpool.sim.node import Node
from perpool.sim.scenarios import WAD, CrowdSpec, Scenario, log_uniform

MARKET_INCREASE, MARKET_DECREASE, STOP_LOSS = 0, 2, 4
PENDING, EXECUTED, CANCELLED = 0, 1, 2
MAX_UINT = 2**256 - 1
BPS = 10_000
LP_COUNT = 3  # the pool is seeded by this many LPs in equal parts


def sim_address(seed: int, role: str, index: int) -> str:
    """A deterministic address nobody holds a key for (the devnet impersonates it)."""
    return to_checksum_address(keccak(text=f"perpool-sim:{seed}:{role}:{index}")[-20:])


@dataclass
class Trader:
    index: int
    address: str
    market: str
    is_long: bool
    collateral_usd: int
    leverage_bps: int
    stop_loss: bool
    whale: bool = False
    open: bool = False  # the chain says it holds a position
    order_id: int | None = None  # its live market order, if any
    stop_id: int | None = None  # its live stop-loss order, if any

    @property
    def size_usd(self) -> int:
        return self.collateral_usd * self.leverage_bps // BPS


def plan_crowd(spec: CrowdSpec, seed: int) -> list[Trader]:
    """The traders of `spec` for `seed`: the same seed gives the same crowd."""
    rng = random.Random(f"crowd:{seed}")
    traders: list[Trader] = []
    longs = round(spec.size * spec.long_share)
    sides = [True] * longs + [False] * (spec.size - longs)
    rng.shuffle(sides)
    for i, is_long in enumerate(sides):
        traders.append(
            Trader(
                index=i,
                address=sim_address(seed, "trader", i),
                market="ETH" if rng.random() < spec.eth_share else "BTC",
                is_long=is_long,
                collateral_usd=rng.randint(spec.min_collateral_usd, spec.max_collateral_usd),
                leverage_bps=int(log_uniform(rng, spec.min_leverage, spec.max_leverage) * BPS),
                stop_loss=rng.random() < spec.stop_loss_share,
            )
        )
    for j, whale in enumerate(spec.whales):
        traders.append(
            Trader(
                index=spec.size + j,
                address=sim_address(seed, "whale", j),
                market=whale.market,
                is_long=whale.is_long,
                collateral_usd=whale.collateral_usd,
                leverage_bps=whale.leverage * BPS,
                stop_loss=False,
                whale=True,
            )
        )
    return traders


class Crowd:
    """The LPs and traders of one run on the devnet."""

    def __init__(self, node: Node, scenario: Scenario, markets: dict[str, int]) -> None:
        self.node, self.scenario, self.markets = node, scenario, markets
        self.rng = random.Random(f"churn:{scenario.seed}")
        self.traders = plan_crowd(scenario.crowd, scenario.seed)
        self.token = node.contract("Token")
        self.vault = node.contract("Vault")
        self.perp = node.contract("Perp")
        self.orders = node.contract("OrderBook")
        self.scale = 10 ** self.token.functions.decimals().call()
        self.fee = self.orders.functions.min_execution_fee().call()
        self.minter = node.w3.eth.accounts[0]  # the devnet deployer (the test token mints to anyone)
        self.placed = 0
        self.refused: list[str] = []

    def tokens(self, usd: int) -> int:
        return usd * self.scale

    # ------------------------------------------------------------ set-up

    def seed_pool(self) -> None:
        """LPs deposit the scenario's pool; the operator funds the insurance fund."""
        share = self.tokens(self.scenario.lp_usd) // LP_COUNT
        for i in range(LP_COUNT):
            lp = sim_address(self.scenario.seed, "lp", i)
            self._fund(lp, share)
            self.node.send(self.vault.functions.deposit(share, 0, lp), lp)
        if self.scenario.insurance_usd:
            operator = sim_address(self.scenario.seed, "operator", 0)
            amount = self.tokens(self.scenario.insurance_usd)
            self._fund(operator, amount)
            self.node.send(self.vault.functions.fund_insurance(amount), operator)

    def _fund(self, account: str, amount: int) -> None:
        self.node.fund_gas(account)
        self.node.send(self.token.functions.mint(account, amount), self.minter)
        self.node.send(self.token.functions.approve(self.vault.address, MAX_UINT), account)

    def fund_traders(self) -> None:
        for t in self.traders:
            # enough for every reopen the churn may ask for, and the execution fees
            self._fund(t.address, self.tokens(t.collateral_usd) * 4 + self.fee * 200)

    # ------------------------------------------------------------ trading

    def open(self, t: Trader) -> bool:
        """Place a market order opening `t`'s position (any fill price is acceptable)."""
        acceptable = MAX_UINT if t.is_long else 0
        fn = self.orders.functions.create_order(
            self.markets[t.market], MARKET_INCREASE, t.is_long, self.tokens(t.collateral_usd),
            t.size_usd * WAD, acceptable, 0, self.fee,
        )
        return self._place(t, fn, "order_id")

    def close(self, t: Trader) -> bool:
        size = self.perp.functions.get_position(t.address, self.markets[t.market], t.is_long).call()[0]
        if size == 0:
            t.open = False
            return False
        acceptable = 0 if t.is_long else MAX_UINT
        fn = self.orders.functions.create_order(
            self.markets[t.market], MARKET_DECREASE, t.is_long, 0, size, acceptable, 0, self.fee
        )
        return self._place(t, fn, "order_id")

    def place_stop_loss(self, t: Trader, price: int) -> bool:
        """A stop-loss `stop_loss_bps` beyond `price` (below for longs, above for shorts)."""
        away = price * self.scenario.crowd.stop_loss_bps // BPS
        trigger = price - away if t.is_long else price + away
        acceptable = 0 if t.is_long else MAX_UINT
        size = self.perp.functions.get_position(t.address, self.markets[t.market], t.is_long).call()[0]
        if size == 0:
            return False
        fn = self.orders.functions.create_order(
            self.markets[t.market], STOP_LOSS, t.is_long, 0, size, acceptable, trigger, self.fee
        )
        return self._place(t, fn, "stop_id")

    def _place(self, t: Trader, fn: Any, slot: str) -> bool:
        receipt = self.node.send(fn, t.address, must=False)
        if receipt["status"] != 1:
            self.refused.append(f"trader {t.index}: {self.node.revert_reason(fn, t.address)}")
            return False
        created = self.orders.events.OrderCreated().process_receipt(receipt, errors=DISCARD)
        setattr(t, slot, created[0]["args"]["order_id"])
        self.placed += 1
        return True

    def open_all(self) -> int:
        return sum(self.open(t) for t in self.traders)

    # ------------------------------------------------------------ following the chain

    def refresh(self) -> None:
        """Which traders hold a position, and which of their orders are still live (one
        JSON-RPC batch)."""
        chain = self.node.chain
        sizes = chain.call_many(
            [self.perp.functions.get_position(t.address, self.markets[t.market], t.is_long) for t in self.traders]
        )
        for t, pos in zip(self.traders, sizes):
            t.open = not isinstance(pos, Exception) and pos[0] > 0
        live = [(t, slot) for t in self.traders for slot in ("order_id", "stop_id") if getattr(t, slot) is not None]
        answers = chain.call_many([self.orders.functions.get_order(getattr(t, slot)) for t, slot in live])
        for (t, slot), order in zip(live, answers):
            if isinstance(order, Exception) or order[0] == "0x0000000000000000000000000000000000000000":
                setattr(t, slot, None)  # executed or cancelled: the order is gone

    def churn(self, prices: dict[str, int]) -> int:
        """This step's trading: `churn` traders close or reopen; traders who want one and
        hold a position without a stop get their stop-loss. Returns orders placed."""
        placed = 0
        idle = [t for t in self.traders if not t.whale and t.order_id is None]
        for t in self.rng.sample(idle, min(self.scenario.crowd.churn, len(idle))):
            placed += self.close(t) if t.open else self.open(t)
        for t in self.traders:
            if t.stop_loss and t.open and t.stop_id is None and t.order_id is None:
                placed += self.place_stop_loss(t, prices[t.market])
        return placed

    def open_positions(self) -> list[Trader]:
        return [t for t in self.traders if t.open]
