# pragma version 0.4.3
"""
@title perpool PerpReader
@notice Convenience views over Perp for traders, market makers and front-ends: a
        position's PnL, fees, leverage and liquidation price; a market's rates per second,
        hour and year. Stateless: every number comes from Perp's own views (the health
        function included), so nothing here can disagree with what Perp enforces.
@dev Kept out of Perp so Perp's bytecode holds what moves money (EIP-170).
"""

from contracts.lib import math
from contracts.lib import market_types
from contracts.interfaces import IOracle

# ---------------------------------------------------------------- interfaces

interface IPerpView:
    def get_position(account: address, market: uint256, is_long: bool) -> market_types.Position: view
    def position_values(account: address, market: uint256, is_long: bool, price: uint256) -> market_types.PositionValues: view
    def current_rates(market: uint256) -> (uint256, int256, int256): view
    def market_status(market: uint256) -> uint256: view
    def settlement_price(market: uint256) -> uint256: view
    def token_scale() -> uint256: view
    def oracle() -> address: view
    def configurator() -> address: view
    def market_words(market: uint256) -> (uint256, uint256): view
    def open_interest(market: uint256, is_long: bool) -> (uint256, uint256): view

interface IConfigView:
    def configs(market: uint256) -> market_types.MarketConfig: view

interface IOracleMarkets:
    def market_count() -> uint256: view

# ---------------------------------------------------------------- constants

WAD: constant(uint256) = 10**18
BPS: constant(uint256) = 10_000
SECONDS_PER_HOUR: constant(uint256) = 3_600
SECONDS_PER_YEAR: constant(uint256) = 31_536_000  # 365 days
SETTLED: constant(uint256) = 2  # Perp's market status
MAX_MARKETS: constant(uint256) = 256  # Oracle markets scanned by `total_reserved_usd`
# Perp's packed market words (see its storage declarations)
TIME_BITS: constant(uint256) = 32  # clock: last update, then the borrow index
MASK_TIME: constant(uint256) = 2**32 - 1
MASK_INDEX: constant(uint256) = 2**80 - 1
POOL_OFFSET: constant(uint256) = 112  # clock: the pool amount recorded at the last touch
HALF: constant(uint256) = 128  # funding: long index low, short index high
MASK_128: constant(uint256) = 2**128 - 1
FUNDING_BIAS: constant(int256) = 2**127

# ---------------------------------------------------------------- structs

struct PositionInfo:
    size_usd: uint256
    size_tokens: uint256
    collateral: uint256  # token units
    entry_price: uint256  # WAD, rounded up for longs, down for shorts
    mark_price: uint256  # WAD, the close price now
    pnl: int256  # WAD USD at the close price
    pending_borrowing_fee: uint256  # WAD USD, rounded up
    pending_funding: int256  # WAD USD, > 0 received, < 0 paid
    close_fee: uint256  # WAD USD
    remaining_collateral: int256  # WAD USD: collateral + pnl - fees +- funding
    maintenance_margin: uint256  # WAD USD, by the position's size tier
    leverage_bps: uint256  # size / collateral, 10_000 = 1x
    liquidation_price: uint256  # WAD, 0 when none exists
    is_liquidatable: bool

struct MarketState:
    last_update: uint256  # s
    borrow_index: uint256  # WAD, as of last_update (`Perp.current_indices`: as of now)
    funding_index_long: int256  # WAD, as of last_update
    funding_index_short: int256
    open_interest_long_usd: uint256  # WAD USD at entry
    open_interest_short_usd: uint256
    open_interest_long_tokens: uint256  # WAD index tokens
    open_interest_short_tokens: uint256
    reserved_usd: uint256  # WAD: open interest of both sides x reserve factor, rounded up
    utilisation_pool_amount: uint256  # token units: the pool amount the borrowing rate uses

struct Rates:
    borrowing_rate_per_second: uint256  # WAD, paid by both sides
    funding_rate_long_per_second: int256  # WAD, > 0 longs receive, < 0 longs pay
    funding_rate_short_per_second: int256
    borrowing_rate_per_hour: uint256
    borrowing_rate_per_year: uint256
    funding_rate_long_per_hour: int256
    funding_rate_short_per_hour: int256
    funding_rate_long_per_year: int256
    funding_rate_short_per_year: int256

# ---------------------------------------------------------------- storage

perp: public(immutable(IPerpView))
oracle: public(immutable(IOracle))
configurator: public(immutable(IConfigView))
token_scale: public(immutable(uint256))


@deploy
def __init__(perp_: address):
    """
    @param perp_ The Perp to read.
    """
    perp = IPerpView(perp_)
    oracle = IOracle(staticcall IPerpView(perp_).oracle())
    configurator = IConfigView(staticcall IPerpView(perp_).configurator())
    token_scale = staticcall IPerpView(perp_).token_scale()


@view
@external
def position_info(account: address, market: uint256, is_long: bool) -> PositionInfo:
    """
    @notice Everything a trader needs: PnL, pending fees, leverage and liquidation price,
            valued at the close price (longs at the min price, shorts at the max; the
            exit price, which may fall back to the reference feed; a settled market's
            settlement price). All zero for no position.
    """
    pos: market_types.Position = staticcall perp.get_position(account, market, is_long)
    if pos.size_usd == 0:
        return empty(PositionInfo)
    price: uint256 = 0
    if staticcall perp.market_status(market) == SETTLED:
        price = staticcall perp.settlement_price(market)
    else:
        price = staticcall oracle.get_exit_price(market, not is_long)
    v: market_types.PositionValues = staticcall perp.position_values(account, market, is_long, price)
    collateral_wad: uint256 = pos.collateral * token_scale
    leverage: uint256 = max_value(uint256)
    if collateral_wad != 0:
        leverage = math.mul_div(pos.size_usd, BPS, collateral_wad, True)
    return PositionInfo(
        size_usd=pos.size_usd,
        size_tokens=pos.size_tokens,
        collateral=pos.collateral,
        entry_price=math.mul_div(pos.size_usd, WAD, pos.size_tokens, is_long),
        mark_price=price,
        pnl=v.pnl,
        pending_borrowing_fee=v.borrowing_fee,
        pending_funding=v.funding,
        close_fee=v.close_fee,
        remaining_collateral=v.remaining,
        maintenance_margin=v.maintenance,
        leverage_bps=leverage,
        liquidation_price=self._liquidation_price(pos, is_long, collateral_wad, v),
        is_liquidatable=v.remaining < convert(v.maintenance, int256),
    )


@view
@external
def rates(market: uint256) -> Rates:
    """
    @notice A market's current borrowing and funding rates, per second, hour and year
            (WAD: 1e18 = 100 %). Funding is signed per side: > 0 the side receives.
    """
    borrow: uint256 = 0
    f_long: int256 = 0
    f_short: int256 = 0
    borrow, f_long, f_short = staticcall perp.current_rates(market)
    return Rates(
        borrowing_rate_per_second=borrow,
        funding_rate_long_per_second=f_long,
        funding_rate_short_per_second=f_short,
        borrowing_rate_per_hour=borrow * SECONDS_PER_HOUR,
        borrowing_rate_per_year=borrow * SECONDS_PER_YEAR,
        funding_rate_long_per_hour=f_long * convert(SECONDS_PER_HOUR, int256),
        funding_rate_short_per_hour=f_short * convert(SECONDS_PER_HOUR, int256),
        funding_rate_long_per_year=f_long * convert(SECONDS_PER_YEAR, int256),
        funding_rate_short_per_year=f_short * convert(SECONDS_PER_YEAR, int256),
    )


@view
@external
def market_state(market: uint256) -> MarketState:
    """
    @notice A market's stored indices (as of `last_update`) and aggregates, decoded from
            Perp's words, with its reserve.
    """
    clock: uint256 = 0
    funding: uint256 = 0
    clock, funding = staticcall perp.market_words(market)
    long_usd: uint256 = 0
    long_tokens: uint256 = 0
    long_usd, long_tokens = staticcall perp.open_interest(market, True)
    short_usd: uint256 = 0
    short_tokens: uint256 = 0
    short_usd, short_tokens = staticcall perp.open_interest(market, False)
    return MarketState(
        last_update=clock & MASK_TIME,
        borrow_index=(clock >> TIME_BITS) & MASK_INDEX,
        funding_index_long=convert(funding & MASK_128, int256) - FUNDING_BIAS,
        funding_index_short=convert(funding >> HALF, int256) - FUNDING_BIAS,
        open_interest_long_usd=long_usd,
        open_interest_short_usd=short_usd,
        open_interest_long_tokens=long_tokens,
        open_interest_short_tokens=short_tokens,
        reserved_usd=self._reserved_usd(market, long_usd + short_usd),
        utilisation_pool_amount=clock >> POOL_OFFSET,
    )


@view
@external
def total_reserved_usd() -> uint256:
    """
    @notice Σ over markets of open interest × reserve factor, WAD USD (each rounded up). The
            Vault's `reserved_amount` is the same in token units, each market rounded up.
    """
    total: uint256 = 0
    for market: uint256 in range(1, MAX_MARKETS + 1):
        if market > staticcall IOracleMarkets(oracle.address).market_count():
            break
        long_usd: uint256 = 0
        short_usd: uint256 = 0
        tokens: uint256 = 0
        long_usd, tokens = staticcall perp.open_interest(market, True)
        short_usd, tokens = staticcall perp.open_interest(market, False)
        total += self._reserved_usd(market, long_usd + short_usd)
    return total


@internal
@view
def _reserved_usd(market: uint256, open_interest_usd: uint256) -> uint256:
    # as Perp reserves: open interest x reserve factor, rounded up
    return math.bps_of(open_interest_usd, (staticcall configurator.configs(market)).reserve_factor_bps, True)


@internal
@pure
def _liquidation_price(pos: market_types.Position, is_long: bool, collateral_wad: uint256, v: market_types.PositionValues) -> uint256:
    # remaining(p) = maintenance is linear in p (pending fees and the tier do not depend
    # on p); solve it. Long: p rounds up, short: down.
    fixed: int256 = convert(collateral_wad, int256) + v.funding - convert(v.borrowing_fee + v.close_fee + v.maintenance, int256)
    if is_long:
        numerator: int256 = convert(pos.size_usd, int256) - fixed
        if numerator <= 0:
            return 0
        return math.mul_div(convert(numerator, uint256), WAD, pos.size_tokens, True)
    numerator: int256 = convert(pos.size_usd, int256) + fixed
    if numerator <= 0:
        return 0
    return math.mul_div(convert(numerator, uint256), WAD, pos.size_tokens, False)
