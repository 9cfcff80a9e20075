# pragma version 0.4.3
"""
@title perpool market settings
@notice The structs Perp shares with the contracts around it: market settings (Perp packs
        and applies them, the Configurator bounds, records and logs them) and a position
        with its values (read by the RiskEngine and the PerpReader). Units as in math.vy: WAD USD,
        basis points (10_000 = 100 %), WAD rates per second.
"""

MAX_TIERS: constant(uint256) = 3

struct MarketConfig:
    max_leverage_bps: uint256  # 10_000 = 1x
    position_fee_bps: uint256  # on every size change
    min_collateral_usd: uint256  # WAD, after fees; a whole number of micro-dollars
    max_open_interest_usd: uint256  # WAD, per side
    reserve_factor_bps: uint256  # reserved = open interest x this
    borrowing_factor: uint256  # WAD per second at 100 % utilisation
    funding_factor: uint256  # WAD per second at full skew
    max_funding_rate: uint256  # WAD per second
    maintenance_margin_bps: uint256  # of size, below the first tier
    min_maintenance_usd: uint256  # WAD floor of the maintenance margin; whole micro-dollars

struct RiskConfig:
    tier_threshold_usd: uint256[MAX_TIERS]  # WAD size from which the tier applies; 0 = unused
    tier_maintenance_bps: uint256[MAX_TIERS]  # the tier's maintenance margin, of size
    liquidation_fee_usd: uint256  # WAD, paid to the liquidator; whole micro-dollars
    liquidation_fee_bps: uint256  # of size, paid to the liquidator on top
    insurance_cut_bps: uint256  # of position fees and liquidation remainders
    max_pnl_factor_for_traders_bps: uint256  # closing profit scaled down above this
    max_pnl_factor_for_adl_bps: uint256  # ADL allowed above this
    min_pnl_factor_after_adl_bps: uint256  # ADL never takes the factor below this

struct Position:
    size_usd: uint256
    size_tokens: uint256
    collateral: uint256  # token units
    borrow_index: uint256  # snapshot at last touch
    funding_index: int256  # snapshot at last touch

struct PositionValues:
    pnl: int256  # WAD USD at the price given
    borrowing_fee: uint256  # WAD USD pending, rounded up
    funding: int256  # WAD USD pending, > 0 received (rounded down), < 0 paid (rounded up)
    close_fee: uint256  # WAD USD, rounded up
    remaining: int256  # collateral + pnl + funding - borrowing_fee - close_fee
    maintenance: uint256  # WAD USD, tiered
