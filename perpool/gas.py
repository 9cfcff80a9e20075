"""Gas used per operation on Anvil, measured in a steady state: a market that already has
positions on both sides and whose fee indices have accrued, an LP pool that already has
deposits. Shared by `ape run gas` (prints) and the gas budget test (asserts)."""

from __future__ import annotations

from typing import Any

from perpool import params
from perpool.deploy import deploy_protocol, deploy_token
from perpool.prices import steps

WAD = params.WAD
BLOCK_TIME = 12  # s between measured transactions: every trade pays its fee accrual

#: GMX v1 measured on the same Anvil (issue #3); the price push is ~56k + 34.5k per token.
GMX_V1: dict[str, int] = {
    "open": 421_665,
    "increase": 327_482,
    "partial decrease": 318_750,
    "close": 247_721,
    "liquidate": 237_376,
    "LP deposit": 424_310,
    "LP redeem": 434_357,
    "price push, 1 market": 56_000 + 34_500,
    "price push, 2 markets": 56_000 + 2 * 34_500,
    # createIncreasePosition + executeIncreasePosition through GMX v1's PositionRouter
    "two-step open": 396_213 + 558_881,
}
#: The two-step budget of issue #6: create + execute of a market open.
TWO_STEP_BUDGET = 380_000


def _fund(token: Any, vault: Any, account: Any, amount: int) -> None:
    token.mint(account, amount, sender=account)
    token.approve(vault.address, 2**256 - 1, sender=account)


def measure(
    project: Any, accounts: Any, chain: Any, receipts: dict[str, Any] | None = None
) -> dict[str, int]:
    """Deploy a fresh protocol on the connected chain, warm it up and return gas per op
    (and, into `receipts` when given, each operation's receipt, for profiling)."""
    deployer, keeper, lp, other_lp, trader, bg_long, bg_short, victim, first_victim = (
        accounts[i] for i in range(9)
    )
    token = deploy_token(project, deployer)
    p = deploy_protocol(project, deployer, token, updaters=(keeper,), chain=chain)
    unit = 10 ** token.decimals()
    eth, btc = p.markets["ETH"], p.markets["BTC"]
    price = {eth: params.LOCAL_MARKETS["ETH"], btc: params.LOCAL_MARKETS["BTC"]}

    def tick(seconds: int = BLOCK_TIME) -> None:
        # Anvil stamps blocks with wall-clock time; fix it so every figure is reproducible
        chain.pending_timestamp = chain.blocks.head.timestamp + seconds

    def push(*markets: int) -> Any:
        for m in markets:
            price[m] = price[m] * 1001 // 1000  # +0.1 %, inside every bound
        tick()
        return p.oracle.set_prices(list(markets), [price[m] for m in markets], chain.pending_timestamp, sender=keeper)

    funded = ((lp, 10_000_000), (other_lp, 100_000), (trader, 100_000), (bg_long, 100_000), (bg_short, 100_000),
              (victim, 100_000), (first_victim, 100_000))
    for account, amount in funded:
        _fund(token, p.vault, account, amount * unit)
    gas: dict[str, int] = {}
    kept: dict[str, Any] = {} if receipts is None else receipts

    # warm-up: LP money in, both sides open, fees accrue for an hour, everyone touched once
    p.vault.deposit(5_000_000 * unit, 0, lp, sender=lp)
    p.perp.increase_position(eth, True, 5_000 * unit, 40_000 * WAD, 2**255, sender=bg_long)
    p.perp.increase_position(eth, False, 5_000 * unit, 30_000 * WAD, 0, sender=bg_short)
    tick(3_600)
    chain.mine()
    push(eth, btc)
    p.perp.increase_position(eth, True, 10 * unit, 0, 0, sender=bg_long)
    p.perp.increase_position(eth, False, 10 * unit, 0, 0, sender=bg_short)
    p.vault.deposit(1_000 * unit, 0, other_lp, sender=other_lp)

    tick()
    kept["LP deposit"] = p.vault.deposit(1_000_000 * unit, 0, lp, sender=lp)
    gas["LP deposit"] = kept["LP deposit"].gas_used
    tick()
    kept["open"] = p.perp.increase_position(eth, True, 1_000 * unit, 10_000 * WAD, 2**255, sender=trader)
    gas["open"] = kept["open"].gas_used
    kept["price push, 1 market"] = push(eth)
    gas["price push, 1 market"] = kept["price push, 1 market"].gas_used
    kept["price push, 2 markets"] = push(eth, btc)
    gas["price push, 2 markets"] = kept["price push, 2 markets"].gas_used
    tick()
    kept["increase"] = p.perp.increase_position(eth, True, 100 * unit, 1_000 * WAD, 2**255, sender=trader)
    gas["increase"] = kept["increase"].gas_used
    tick()
    kept["add collateral"] = p.perp.increase_position(eth, True, 100 * unit, 0, 0, sender=trader)
    gas["add collateral"] = kept["add collateral"].gas_used
    tick()
    kept["partial decrease"] = p.perp.decrease_position(eth, True, 0, 5_000 * WAD, 0, trader, sender=trader)
    gas["partial decrease"] = kept["partial decrease"].gas_used
    size = p.perp.get_position(trader, eth, True).size_usd
    tick()
    kept["close"] = p.perp.decrease_position(eth, True, 0, size, 0, trader, sender=trader)
    gas["close"] = kept["close"].gas_used
    tick(params.COOLDOWN)
    chain.mine()
    push(eth, btc)
    tick()
    kept["LP redeem"] = p.vault.redeem(100_000 * WAD, 0, lp, sender=lp)
    gas["LP redeem"] = kept["LP redeem"].gas_used

    # two 20x longs, then ETH -4 % in two pushes of the 2 % jump bound (the spread is on):
    # below maintenance, above the keeper's fee, so the usual liquidation (no top-up, no bad
    # debt). The keeper has liquidated before (its claimable fee balance is not a first write).
    for account in (first_victim, victim):
        tick()
        p.perp.increase_position(eth, True, 500 * unit, 10_000 * WAD, 2**255, sender=account)
    target = price[eth] * 960 // 1000
    for step in steps(price[eth], target, p.oracle.config().max_jump_bps):
        tick()
        p.oracle.set_prices([eth], [step], chain.pending_timestamp, sender=keeper)
    price[eth] = target
    tick()
    p.perp.liquidate(first_victim, eth, True, keeper, sender=keeper)
    tick()
    kept["liquidate"] = p.perp.liquidate(victim, eth, True, keeper, sender=keeper)
    gas["liquidate"] = kept["liquidate"].gas_used
    tick()
    kept["keeper claim"] = p.vault.claim(keeper, sender=keeper)
    gas["keeper claim"] = kept["keeper claim"].gas_used

    # orders: a market open placed by the trader and filled by the keeper at the next
    # price; once to warm up (order ids, the keeper's fee balance), then measured
    fee = params.MIN_EXECUTION_FEE
    for label in ("warm-up", "measured"):
        tick()
        created = p.orders.create_order(eth, 0, True, 1_000 * unit, 10_000 * WAD, 2**255, 0, fee, sender=trader)
        push(eth)
        tick()
        executed = p.orders.execute_orders([created.return_value], keeper, sender=keeper)
        if label == "measured":
            kept["order create"], kept["order execute"] = created, executed
        tick()
        size = p.perp.get_position(trader, eth, True).size_usd
        p.perp.decrease_position(eth, True, 0, size, 0, trader, sender=trader)
    gas["order create"] = kept["order create"].gas_used
    gas["order execute"] = kept["order execute"].gas_used
    gas["two-step open"] = gas["order create"] + gas["order execute"]
    tick()
    order_id = p.orders.create_order(eth, 0, True, 1_000 * unit, 10_000 * WAD, 2**255, 0, fee, sender=trader).return_value
    price[eth] = price[eth] * 1001 // 1000
    tick()
    kept["push + execute"] = p.orders.execute_orders_with_prices(
        [eth], [price[eth]], chain.pending_timestamp, [order_id], keeper, sender=keeper
    )
    gas["push + execute"] = kept["push + execute"].gas_used

    # LP orders: placed by an LP, filled by the keeper once every market has a newer price
    # (other_lp's cooldown from the warm-up is long over; the push is not counted)
    tick()
    kept["LP redeem order create"] = p.orders.create_redeem_order(
        p.vault.balanceOf(other_lp) // 2, 0, fee, sender=other_lp)
    push(eth, btc)
    tick()
    kept["LP redeem order execute"] = p.orders.execute_orders(
        [kept["LP redeem order create"].return_value], keeper, sender=keeper)
    tick()
    kept["LP deposit order create"] = p.orders.create_deposit_order(100_000 * unit, 0, fee, sender=lp)
    push(eth, btc)
    tick()
    kept["LP deposit order execute"] = p.orders.execute_orders(
        [kept["LP deposit order create"].return_value], keeper, sender=keeper)
    for name in ("LP deposit order create", "LP deposit order execute", "LP redeem order create", "LP redeem order execute"):
        gas[name] = kept[name].gas_used
    return gas


def table(gas: dict[str, int]) -> str:
    """A plain-text table of the figures against GMX v1's."""
    lines = [f"{'operation':<24}{'gas':>10}{'GMX v1':>10}{'ratio':>8}"]
    for name, used in gas.items():
        ref = GMX_V1.get(name)
        ratio = f"{used / ref:.2f}" if ref else "-"
        lines.append(f"{name:<24}{used:>10,}{(f'{ref:,}' if ref else '-'):>10}{ratio:>8}")
    return "\n".join(lines)
