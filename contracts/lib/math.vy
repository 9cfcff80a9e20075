# pragma version 0.4.3
"""
@title perpool fixed-point helpers
@notice Stateless internal helpers, inlined into every contract that imports them
        (imported plainly: the module has no state, so no `initializes` is needed).
@dev Units, documented once for the whole project:
     - USD values and prices are WAD: 1e18 = $1. A price is USD per one whole index token.
     - Sizes in index tokens are WAD: 1e18 = one whole token.
     - Token amounts stay in the collateral token's own decimals.
     - Basis points: 10_000 = 100 %.
     Every division names its rounding direction; callers pick the one that favours the pool.
"""

WAD: constant(uint256) = 10**18
BPS: constant(uint256) = 10_000


@internal
@pure
def mul_div(x: uint256, y: uint256, d: uint256, round_up: bool) -> uint256:
    """
    @notice x * y / d, rounded down or up.
    @dev Reverts on overflow of x * y (checked arithmetic): every caller's product stays
         below 2**256 for amounts under 1e30 WAD (a trillion dollars) times WAD-scaled
         factors, which the contracts' caps guarantee.
    """
    p: uint256 = x * y
    q: uint256 = p // d
    if round_up and q * d != p:
        q += 1
    return q


@internal
@pure
def bps_of(x: uint256, bps: uint256, round_up: bool) -> uint256:
    """
    @notice x * bps / 10_000, rounded down or up.
    """
    return self.mul_div(x, bps, BPS, round_up)


@internal
@pure
def abs_diff(a: uint256, b: uint256) -> uint256:
    """
    @notice |a - b| without underflow.
    """
    if a > b:
        return a - b
    return b - a


@internal
@pure
def pnl_usd(size_usd: uint256, size_tokens: uint256, price: uint256, is_long: bool) -> int256:
    """
    @notice PnL of `size_tokens` index tokens opened for `size_usd`, at `price` (all WAD):
            long = tokens x price - size, short = size - tokens x price. The tokens' value
            rounds down for longs and up for shorts, so PnL never rounds up.
    """
    if is_long:
        return convert(self.mul_div(size_tokens, price, WAD, False), int256) - convert(size_usd, int256)
    return convert(size_usd, int256) - convert(self.mul_div(size_tokens, price, WAD, True), int256)
