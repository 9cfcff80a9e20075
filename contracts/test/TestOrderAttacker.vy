# pragma version 0.4.3
"""
@title Test-only order owner that tries to re-enter the OrderBook when paid
@notice Owns orders like a trader. Armed with an order id, `attack` (which a re-entrant
        token calls back during a transfer to this contract) tries to cancel that order
        through the OrderBook while the first refund is still being paid, and records
        whether it got in. For tests only.
"""

interface IOrders:
    def create_order(market: uint256, kind: uint256, is_long: bool, collateral_delta: uint256, size_delta: uint256, acceptable_price: uint256, trigger_price: uint256, execution_fee: uint256) -> uint256: nonpayable
    def cancel_order(order_id: uint256): nonpayable

interface IApprove:
    def approve(spender: address, amount: uint256) -> bool: nonpayable

orders: public(address)
target_order: public(uint256)
attempted: public(bool)
succeeded: public(bool)


@deploy
def __init__(orders_: address):
    self.orders = orders_


@external
def approve(token: address, spender: address):
    """
    @notice Let `spender` (the Vault) pull this contract's tokens.
    """
    extcall IApprove(token).approve(spender, max_value(uint256))


@external
def place(market: uint256, kind: uint256, is_long: bool, collateral_delta: uint256, size_delta: uint256, execution_fee: uint256) -> uint256:
    """
    @notice Create an order owned by this contract (any acceptable price, no trigger).
    """
    acceptable: uint256 = 0
    if (kind <= 1) == is_long:
        acceptable = max_value(uint256)
    return extcall IOrders(self.orders).create_order(market, kind, is_long, collateral_delta, size_delta, acceptable, 0, execution_fee)


@external
def cancel(order_id: uint256, then_target: uint256):
    """
    @notice Cancel `order_id`; when its refund arrives, `attack` goes for `then_target`.
    """
    self.target_order = then_target
    self.attempted = False
    self.succeeded = False
    extcall IOrders(self.orders).cancel_order(order_id)


@external
def attack():
    """
    @notice The re-entry: cancel the target order while the first refund is being paid.
    """
    self.attempted = True
    self.succeeded = raw_call(
        self.orders,
        abi_encode(self.target_order, method_id=method_id("cancel_order(uint256)")),
        revert_on_failure=False,
    )
