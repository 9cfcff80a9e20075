# pragma version 0.4.3
"""
@title Test-only crowd of traders, for the liquidator benchmark
@notice Opens many positions in one transaction. Perp keys positions by account, so each
        order gets its own trader: a minimal proxy of this very contract (its code, with
        empty storage and this contract's immutables), funded from the tokens this contract
        holds, which approves the Vault and opens one position through Perp. Mint tokens to
        this contract first. For benchmarks and devnets only (scripts/bench_liquidator.py).
"""

from ethereum.ercs import IERC20


interface IPerp:
    def increase_position(market: uint256, is_long: bool, collateral_delta: uint256, size_delta: uint256, acceptable_price: uint256): nonpayable


interface ITrader:
    def trade(market: uint256, is_long: bool, collateral: uint256, size: uint256): nonpayable


struct Order:
    market: uint256
    is_long: bool
    collateral: uint256  # token units
    size: uint256  # WAD USD


MAX_ORDERS: constant(uint256) = 256

TOKEN: public(immutable(address))
PERP: public(immutable(address))
VAULT: public(immutable(address))


event Crowd:
    first: address
    count: uint256


@deploy
def __init__(token: address, perp: address, vault: address):
    TOKEN = token
    PERP = perp
    VAULT = vault


@external
def open_positions(orders: DynArray[Order, MAX_ORDERS]) -> DynArray[address, MAX_ORDERS]:
    """
    @notice For each order: create a trader, send it the collateral, have it open the
            position at any price (longs accept any, shorts any above zero).
    @return The traders, in order.
    """
    traders: DynArray[address, MAX_ORDERS] = []
    for o: Order in orders:
        trader: address = create_minimal_proxy_to(self)
        assert extcall IERC20(TOKEN).transfer(trader, o.collateral), "crowd: transfer"
        extcall ITrader(trader).trade(o.market, o.is_long, o.collateral, o.size)
        traders.append(trader)
    if len(traders) > 0:
        log Crowd(first=traders[0], count=len(traders))
    return traders


@external
def trade(market: uint256, is_long: bool, collateral: uint256, size: uint256):
    """
    @notice Run by a trader (a proxy): approve the Vault for `collateral` and open the
            position. Anyone may call it; a trader holds nothing once it has traded.
    """
    assert extcall IERC20(TOKEN).approve(VAULT, collateral), "crowd: approve"
    acceptable: uint256 = max_value(uint256) if is_long else 0
    extcall IPerp(PERP).increase_position(market, is_long, collateral, size, acceptable)
