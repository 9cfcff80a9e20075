"""Default on-chain settings. Units as in the contracts: WAD USD, seconds, basis points."""

from __future__ import annotations

WAD = 10**18
BPS = 10_000

#: Oracle bounds (see contracts/Oracle.vy, `OracleConfig`).
ORACLE_CONFIG: dict[str, int] = {
    "max_price_age": 300,  # s: a keeper price older than 5 min is stale
    "max_future_skew": 30,  # s
    "window": 3_600,  # s: the anchored window of the cumulative bound
    "spread_duration": 300,  # s: spread stays 5 min after a large move
    # 2 % per push: the initial margin at the default 50x max leverage. The Oracle refuses a
    # jump above the highest max leverage's margin (a hedged long + short at max leverage
    # would otherwise gain across one push more than the losing leg's collateral); keepers
    # step larger moves (`split_large_moves`)
    "max_jump_bps": 200,
    "max_window_move_bps": 4_000,  # 40 % per window
    "spread_threshold_bps": 200,  # a 2 % move within the window turns the spread on
    "spread_bps": 30,  # 0.3 %
    "max_deviation_bps": 500,  # 5 % from the reference feed
    "fallback_spread_bps": 100,  # 1 % on reference prices used by exits
}

#: Markets a local deploy registers, with the price it seeds them at (WAD USD).
LOCAL_MARKETS: dict[str, int] = {"ETH": 3_000 * WAD, "BTC": 60_000 * WAD}

#: Vault LP settings.
VAULT_NAME = "perpool LP"
VAULT_SYMBOL = "PLP"
MINT_FEE_BPS = 10
BURN_FEE_BPS = 10
COOLDOWN = 900  # s

#: The test stablecoin a local deploy creates.
STABLE_NAME = "Test USD"
STABLE_SYMBOL = "tUSD"
STABLE_DECIMALS = 6

# OrderBook: the keeper's fee per order, token units of the stablecoin (6 decimals: $0.10)
MIN_EXECUTION_FEE = 100_000

_PER_HOUR = WAD // 3_600  # WAD per second that makes 100 % per hour

#: Perp market settings (see contracts/Perp.vy, `MarketConfig`), the same for ETH and BTC.
MARKET_CONFIG: dict[str, int] = {
    "max_leverage_bps": 500_000,  # 50x
    "position_fee_bps": 10,  # 0.1 % of size on open and close
    "min_collateral_usd": 10 * WAD,
    "max_open_interest_usd": 50_000_000 * WAD,  # per side
    "reserve_factor_bps": 10_000,  # reserve 100 % of open interest
    "borrowing_factor": _PER_HOUR // 10_000,  # 0.01 %/h at 100 % utilisation
    "funding_factor": _PER_HOUR // 10_000,  # 0.01 %/h at full skew
    "max_funding_rate": _PER_HOUR * 5 // 10_000,  # 0.05 %/h
    "maintenance_margin_bps": 50,  # 0.5 %
    "min_maintenance_usd": 5 * WAD,
}

#: Perp risk settings (see contracts/lib/market_types.vy, `RiskConfig`), the same for ETH
#: and BTC. Larger positions need more maintenance margin: 0.5 % below $1M (the market
#: config's base rate), then 1 %, 1.5 % and 2.5 %.
RISK_CONFIG: dict[str, object] = {
    "tier_threshold_usd": [1_000_000 * WAD, 5_000_000 * WAD, 20_000_000 * WAD],
    "tier_maintenance_bps": [100, 150, 250],
    "liquidation_fee_usd": 2 * WAD,  # $2 to the liquidator...
    "liquidation_fee_bps": 5,  # ...plus 0.05 % of the size
    "insurance_cut_bps": 1_000,  # 10 % of position fees and liquidation remainders
    "max_pnl_factor_for_traders_bps": 9_000,  # closing profit scaled down above 90 % of the pool
    "max_pnl_factor_for_adl_bps": 7_000,  # ADL above 70 %...
    "min_pnl_factor_after_adl_bps": 5_000,  # ...down to 50 %
}
