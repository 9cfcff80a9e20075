# pragma version 0.4.3
"""
@title perpool Chainlink-style feed adapter
@notice Serves one market of the perpool Oracle through Chainlink's AggregatorV3Interface
        (8 decimals), so any Chainlink consumer can read perpool prices. Stateless: deploy
        one per market.
@custom:kill Nothing to kill: it only reads the Oracle.
"""

interface IPerpoolOracle:
    def latest_round_data(market: uint256) -> (uint80, int256, uint256, uint256, uint80): view
    def market_names(market: uint256) -> String[16]: view

FEED_DECIMALS: constant(uint8) = 8
FEED_VERSION: constant(uint256) = 1

oracle: public(immutable(IPerpoolOracle))
market: public(immutable(uint256))


@deploy
def __init__(oracle_: address, market_: uint256):
    """
    @param oracle_ The perpool Oracle.
    @param market_ The market this feed serves (must be registered).
    """
    oracle = IPerpoolOracle(oracle_)
    market = market_
    # reverts "oracle: unknown market" for an unregistered market
    probe: uint80 = (staticcall IPerpoolOracle(oracle_).latest_round_data(market_))[0]


@view
@external
def decimals() -> uint8:
    """
    @notice The answer's decimals: 8, like Chainlink USD feeds.
    """
    return FEED_DECIMALS


@view
@external
def description() -> String[32]:
    """
    @notice "<market name> / USD".
    """
    return concat(staticcall oracle.market_names(market), " / USD")


@view
@external
def version() -> uint256:
    """
    @notice The adapter's version.
    """
    return FEED_VERSION


@view
@external
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    """
    @notice The market's last pushed price; round id and timestamps are its observation time.
    @return roundId, answer, startedAt, updatedAt, answeredInRound
    """
    return staticcall oracle.latest_round_data(market)
