# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title perpool Configurator
@notice The governance surface of Perp: roles, bounded market settings (each logged
        decoded), pause and wind-down. Perp accepts its setters only from this contract,
        so every bound lives here, once.
@dev Roles: `admin` (two-step transfer) sets everything; `pauser` may only pause (the
     admin unpauses). Pausing stops opening and increasing positions in Perp and LP
     deposits in the Vault (this contract must be the Vault's pauser); closing, adding
     collateral, liquidation, ADL and LP redemption stay open.
     Wind-down: `close_market` stops new exposure; `settle_market` fixes the price every
     remaining position closes at, which must lie within the Oracle's max_deviation_bps of
     the market's reference feed where one is set.
     Units as in contracts/lib/math.vy; USD floors and fees are stored by Perp in
     micro-dollars, so they must be whole micro-dollars (multiples of 1e12 WAD).
"""

from contracts.lib import math
from contracts.lib import market_types
from contracts.interfaces import IAggregatorV3

# ---------------------------------------------------------------- interfaces

struct ReferenceFeed:
    feed: address
    max_age: uint256
    decimals: uint256

struct OracleConfig:
    max_price_age: uint256
    max_future_skew: uint256
    window: uint256
    spread_duration: uint256
    max_jump_bps: uint256
    max_window_move_bps: uint256
    spread_threshold_bps: uint256
    spread_bps: uint256
    max_deviation_bps: uint256
    fallback_spread_bps: uint256

interface IOracleRef:
    def reference_feed(market: uint256) -> ReferenceFeed: view
    def config() -> OracleConfig: view
    def is_market(market: uint256) -> bool: view

interface IPerpAdmin:
    def configure_market(market: uint256, c: market_types.MarketConfig, r: market_types.RiskConfig): nonpayable
    def set_market_status(market: uint256, status: uint256, settlement_price: uint256): nonpayable
    def set_paused(paused: bool): nonpayable
    def set_max_pnl_factor(max_pnl_factor_bps: uint256): nonpayable
    def set_deleverager(deleverager: address): nonpayable
    def set_order_book(order_book: address): nonpayable
    def set_direct_fills(market: uint256, enabled: bool): nonpayable
    def market_status(market: uint256) -> uint256: view

interface IVaultPause:
    def set_paused(paused: bool): nonpayable

# ---------------------------------------------------------------- constants

BPS: constant(uint256) = 10_000
WAD: constant(uint256) = 10**18
WAD_DECIMALS: constant(uint256) = 18
MICRO_USD: constant(uint256) = 10**12  # Perp stores USD settings in micro-dollars
MAX_TIER_THRESHOLD: constant(uint256) = 2**56 - 1  # micro-dollars

# market settings
MIN_LEVERAGE_BPS: constant(uint256) = 10_000  # 1x
MAX_LEVERAGE_BPS: constant(uint256) = 1_000_000  # 100x
MAX_MARKETS: constant(uint256) = 16  # as Perp
MAX_POSITION_FEE_BPS: constant(uint256) = 100  # 1 %
MIN_MIN_COLLATERAL_USD: constant(uint256) = 10**18  # $1
MAX_MIN_COLLATERAL_USD: constant(uint256) = 10_000 * 10**18  # $10,000
MAX_OPEN_INTEREST_BITS: constant(uint256) = 112
MAX_RESERVE_FACTOR_BPS: constant(uint256) = 20_000  # reserve up to 2x the open interest
MIN_RESERVE_FACTOR_BPS: constant(uint256) = 1_000
MAX_BORROWING_FACTOR: constant(uint256) = 10**18 // 3_600 // 100  # 1 %/h at 100 % use
MAX_FUNDING_FACTOR: constant(uint256) = 10**18 // 3_600 // 100  # 1 %/h at full skew
MAX_FUNDING_RATE: constant(uint256) = 10**18 // 3_600 // 100  # 1 %/h
MIN_MAINTENANCE_BPS: constant(uint256) = 10  # 0.1 %
MAX_MAINTENANCE_BPS: constant(uint256) = 5_000  # 50 %
MAX_PNL_FACTOR_BPS: constant(uint256) = 10_000  # trader profit at most the pool amount

# risk settings
MAX_LIQUIDATION_FEE_USD: constant(uint256) = 100 * 10**18  # $100
MAX_LIQUIDATION_FEE_BPS: constant(uint256) = 100  # 1 % of size
MAX_INSURANCE_CUT_BPS: constant(uint256) = 5_000  # half of fees and remainders

# market status in Perp
ACTIVE: constant(uint256) = 0
CLOSE_ONLY: constant(uint256) = 1
SETTLED: constant(uint256) = 2

# ---------------------------------------------------------------- storage

oracle: public(immutable(IOracleRef))
vault: public(immutable(IVaultPause))
perp: public(IPerpAdmin)  # set once, after Perp is deployed with this contract's address

admin: public(address)
pending_admin: public(address)
pauser: public(address)
paused: public(bool)

configs: public(HashMap[uint256, market_types.MarketConfig])  # as last set
risk_configs: public(HashMap[uint256, market_types.RiskConfig])
direct_fills_off: public(HashMap[uint256, bool])  # as last set (Perp's `direct_fills`)
new_markets_direct_fills: public(bool)  # what `add_market` lists a market with
listed: public(DynArray[uint256, MAX_MARKETS])  # every market `add_market` listed, in order

# ---------------------------------------------------------------- events

event PerpSet:
    perp: indexed(address)

event MarketConfigSet:
    market: indexed(uint256)
    max_leverage_bps: uint256
    position_fee_bps: uint256
    min_collateral_usd: uint256
    max_open_interest_usd: uint256
    reserve_factor_bps: uint256
    borrowing_factor: uint256
    funding_factor: uint256
    max_funding_rate: uint256
    maintenance_margin_bps: uint256
    min_maintenance_usd: uint256

event RiskConfigSet:
    market: indexed(uint256)
    tier_threshold_usd: uint256[market_types.MAX_TIERS]
    tier_maintenance_bps: uint256[market_types.MAX_TIERS]
    liquidation_fee_usd: uint256
    liquidation_fee_bps: uint256
    insurance_cut_bps: uint256
    max_pnl_factor_for_traders_bps: uint256
    max_pnl_factor_for_adl_bps: uint256
    min_pnl_factor_after_adl_bps: uint256

event MarketClosed:
    market: indexed(uint256)

event MarketReopened:
    market: indexed(uint256)

event MarketSettled:
    market: indexed(uint256)
    settlement_price: uint256
    reference_price: uint256  # 0 when the market has no reference feed

event PausedSet:
    account: indexed(address)
    paused: bool

event PauserSet:
    pauser: indexed(address)

event DeleveragerSet:
    deleverager: indexed(address)

event OrderBookSet:
    order_book: indexed(address)

event DirectFillsSet:
    market: indexed(uint256)
    enabled: bool

event NewMarketsDirectFillsSet:
    enabled: bool

event MaxPnlFactorSet:
    max_pnl_factor_bps: uint256

event AdminTransferStarted:
    admin: indexed(address)
    pending_admin: indexed(address)

event AdminTransferred:
    previous_admin: indexed(address)
    admin: indexed(address)


@deploy
def __init__(oracle_: address, vault_: address):
    """
    @param oracle_ The perpool Oracle (markets must be registered there first).
    @param vault_ The perpool Vault; make this contract its pauser.
    """
    oracle = IOracleRef(oracle_)
    vault = IVaultPause(vault_)
    self.admin = msg.sender
    self.new_markets_direct_fills = True
    log AdminTransferred(previous_admin=empty(address), admin=msg.sender)


# ---------------------------------------------------------------- markets


@external
def set_perp(perp_: address):
    """
    @notice Name the Perp this contract configures (once; Perp names this contract at
            deploy).
    """
    self._only_admin()
    assert self.perp.address == empty(address), "config: perp already set"
    assert perp_ != empty(address), "config: zero address"
    self.perp = IPerpAdmin(perp_)
    log PerpSet(perp=perp_)


@external
def add_market(market: uint256, c: market_types.MarketConfig, r: market_types.RiskConfig):
    """
    @notice List a market registered in the Oracle in Perp, with its bounded settings.
    """
    self._only_admin()
    assert staticcall oracle.is_market(market), "config: unknown oracle market"
    assert self.configs[market].max_leverage_bps == 0, "config: market exists"
    assert len(self.listed) < MAX_MARKETS, "config: too many markets"
    self.listed.append(market)
    self._apply(market, c, r)
    if not self.new_markets_direct_fills:
        self._set_direct_fills(market, False)


@external
def set_market_config(market: uint256, c: market_types.MarketConfig):
    """
    @notice Change a listed market's trading settings (Perp accrues fees under the old
            ones first; the reserve follows the new factor).
    """
    self._only_listed(market)
    self._apply(market, c, self.risk_configs[market])


@external
def set_risk_config(market: uint256, r: market_types.RiskConfig):
    """
    @notice Change a listed market's maintenance tiers, liquidation fee, insurance cut and
            pnl factors.
    """
    self._only_listed(market)
    self._apply(market, self.configs[market], r)


@external
def set_max_pnl_factor(max_pnl_factor_bps: uint256):
    """
    @notice Cap on net trader profit counted in the pool value, in bps of the pool amount.
    """
    self._only_admin()
    assert max_pnl_factor_bps != 0 and max_pnl_factor_bps <= MAX_PNL_FACTOR_BPS, "config: bad max pnl factor"
    log MaxPnlFactorSet(max_pnl_factor_bps=max_pnl_factor_bps)
    extcall self.perp.set_max_pnl_factor(max_pnl_factor_bps)


@external
def set_deleverager(deleverager: address):
    """
    @notice The contract allowed to run ADL closes in Perp (the RiskEngine); the empty
            address switches ADL off.
    """
    self._only_admin()
    log DeleveragerSet(deleverager=deleverager)
    extcall self.perp.set_deleverager(deleverager)


@external
def set_order_book(order_book: address):
    """
    @notice The contract allowed to fill orders in Perp for their owners (the OrderBook);
            the empty address switches order fills off.
    """
    self._only_admin()
    log OrderBookSet(order_book=order_book)
    extcall self.perp.set_order_book(order_book)


@external
def set_direct_fills(market: uint256, enabled: bool):
    """
    @notice Allow or refuse traders' own `increase_position` / `decrease_position` in
            `market` (off: every trade goes through the OrderBook and fills at a price
            newer than its order, so nobody trades on a price they already know; the
            deploy script turns them off on public networks). Liquidation, ADL and
            settlement are unaffected.
    """
    self._only_listed(market)
    self._set_direct_fills(market, enabled)


@external
def set_new_markets_direct_fills(enabled: bool):
    """
    @notice Whether `add_market` lists markets with direct fills on (the default) or off
            (public networks: no market is ever tradable directly, not even for a block).
    """
    self._only_admin()
    self.new_markets_direct_fills = enabled
    log NewMarketsDirectFillsSet(enabled=enabled)


@view
@external
def max_leverage_bps() -> uint256:
    """
    @notice The highest max leverage of any listed market (bps; 0 before the first). The
            Oracle reads it to bound its `max_jump_bps` (see `Oracle.set_leverage_source`).
    """
    highest: uint256 = 0
    for market: uint256 in self.listed:
        highest = max(highest, self.configs[market].max_leverage_bps)
    return highest


# ---------------------------------------------------------------- pause and wind-down


@external
def set_paused(paused: bool):
    """
    @notice Pause (admin or pauser) or unpause (admin only) opening and increasing
            positions and LP deposits. Closing, adding collateral, liquidation, ADL and
            LP redemption are never paused.
    """
    if paused:
        assert msg.sender == self.admin or msg.sender == self.pauser, "config: not pauser"
    else:
        self._only_admin()
    self.paused = paused
    log PausedSet(account=msg.sender, paused=paused)
    extcall self.perp.set_paused(paused)
    extcall vault.set_paused(paused)


@external
def set_pauser(pauser: address):
    """
    @notice The account allowed to pause (the empty address: nobody but the admin).
    """
    self._only_admin()
    self.pauser = pauser
    log PauserSet(pauser=pauser)


@external
def close_market(market: uint256):
    """
    @notice Wind-down, step one: the market takes no new exposure (opening and increasing
            refused); everything that closes stays open.
    """
    self._only_listed(market)
    log MarketClosed(market=market)
    extcall self.perp.set_market_status(market, CLOSE_ONLY, 0)


@external
def reopen_market(market: uint256):
    """
    @notice Undo `close_market` (new exposure allowed again). A settled market stays settled.
    """
    self._only_listed(market)
    log MarketReopened(market=market)
    extcall self.perp.set_market_status(market, ACTIVE, 0)


@external
def settle_market(market: uint256, settlement_price: uint256):
    """
    @notice Wind-down, step two: every position of the market now closes (by its owner,
            by `RiskEngine.settle_position` from anyone, or by liquidation) at `settlement_price`,
            and fees stop accruing. Where the market has a reference feed, the price must
            lie within the Oracle's max_deviation_bps of its latest answer (of any age:
            the market may be settled because its index stopped).
    """
    self._only_listed(market)
    assert settlement_price != 0, "config: zero price"
    reference: uint256 = self._reference_price(market)
    if reference != 0:
        bound: uint256 = (staticcall oracle.config()).max_deviation_bps
        assert math.abs_diff(settlement_price, reference) * BPS <= bound * reference, "config: price off reference"
    log MarketSettled(market=market, settlement_price=settlement_price, reference_price=reference)
    extcall self.perp.set_market_status(market, SETTLED, settlement_price)


# ---------------------------------------------------------------- admin


@external
def transfer_admin(new_admin: address):
    """
    @notice Step one of an admin transfer: name the next admin, who must accept.
    """
    self._only_admin()
    self.pending_admin = new_admin
    log AdminTransferStarted(admin=self.admin, pending_admin=new_admin)


@external
def accept_admin():
    """
    @notice Step two of an admin transfer: the pending admin takes over.
    """
    assert msg.sender == self.pending_admin, "config: not pending admin"
    log AdminTransferred(previous_admin=self.admin, admin=msg.sender)
    self.admin = msg.sender
    self.pending_admin = empty(address)


# ---------------------------------------------------------------- internals


@internal
def _set_direct_fills(market: uint256, enabled: bool):
    self.direct_fills_off[market] = not enabled
    log DirectFillsSet(market=market, enabled=enabled)
    extcall self.perp.set_direct_fills(market, enabled)


@internal
@view
def _only_admin():
    assert msg.sender == self.admin, "config: not admin"


@internal
@view
def _only_listed(market: uint256):
    self._only_admin()
    assert self.configs[market].max_leverage_bps != 0, "config: unknown market"


@internal
def _apply(market: uint256, c: market_types.MarketConfig, r: market_types.RiskConfig):
    self._check_market(c)
    self._check_risk(c, r)
    self.configs[market] = c
    self.risk_configs[market] = r
    log MarketConfigSet(
        market=market,
        max_leverage_bps=c.max_leverage_bps,
        position_fee_bps=c.position_fee_bps,
        min_collateral_usd=c.min_collateral_usd,
        max_open_interest_usd=c.max_open_interest_usd,
        reserve_factor_bps=c.reserve_factor_bps,
        borrowing_factor=c.borrowing_factor,
        funding_factor=c.funding_factor,
        max_funding_rate=c.max_funding_rate,
        maintenance_margin_bps=c.maintenance_margin_bps,
        min_maintenance_usd=c.min_maintenance_usd,
    )
    log RiskConfigSet(
        market=market,
        tier_threshold_usd=r.tier_threshold_usd,
        tier_maintenance_bps=r.tier_maintenance_bps,
        liquidation_fee_usd=r.liquidation_fee_usd,
        liquidation_fee_bps=r.liquidation_fee_bps,
        insurance_cut_bps=r.insurance_cut_bps,
        max_pnl_factor_for_traders_bps=r.max_pnl_factor_for_traders_bps,
        max_pnl_factor_for_adl_bps=r.max_pnl_factor_for_adl_bps,
        min_pnl_factor_after_adl_bps=r.min_pnl_factor_after_adl_bps,
    )
    extcall self.perp.configure_market(market, c, r)


@internal
@view
def _check_market(c: market_types.MarketConfig):
    assert c.max_leverage_bps >= MIN_LEVERAGE_BPS and c.max_leverage_bps <= MAX_LEVERAGE_BPS, "config: bad max leverage"
    # one push (at most the Oracle's max_jump_bps) may not exceed the initial margin of a
    # position at max leverage: else a hedged long + short at max leverage gains across one
    # push more than the losing leg's collateral, and the LPs pay the difference as bad debt
    jump: uint256 = (staticcall oracle.config()).max_jump_bps
    assert c.max_leverage_bps * jump <= BPS * BPS, "config: leverage above oracle jump"
    assert c.position_fee_bps <= MAX_POSITION_FEE_BPS, "config: bad position fee"
    assert c.min_collateral_usd >= MIN_MIN_COLLATERAL_USD and c.min_collateral_usd <= MAX_MIN_COLLATERAL_USD, "config: bad min collateral"
    assert c.min_collateral_usd % MICRO_USD == 0, "config: bad min collateral"
    assert c.max_open_interest_usd < 1 << MAX_OPEN_INTEREST_BITS, "config: bad max open interest"
    assert c.reserve_factor_bps >= MIN_RESERVE_FACTOR_BPS and c.reserve_factor_bps <= MAX_RESERVE_FACTOR_BPS, "config: bad reserve factor"
    assert c.borrowing_factor <= MAX_BORROWING_FACTOR, "config: bad borrowing factor"
    assert c.funding_factor <= MAX_FUNDING_FACTOR, "config: bad funding factor"
    assert c.max_funding_rate <= MAX_FUNDING_RATE, "config: bad max funding rate"
    assert c.maintenance_margin_bps >= MIN_MAINTENANCE_BPS and c.maintenance_margin_bps <= MAX_MAINTENANCE_BPS, "config: bad maintenance margin"
    # a position at max leverage must start healthy: its initial margin exceeds maintenance
    assert c.maintenance_margin_bps * c.max_leverage_bps < BPS * BPS, "config: bad maintenance margin"
    assert c.min_maintenance_usd < c.min_collateral_usd and c.min_maintenance_usd % MICRO_USD == 0, "config: bad min maintenance"


@internal
@pure
def _check_risk(c: market_types.MarketConfig, r: market_types.RiskConfig):
    # tiers: thresholds and rates strictly increase from the base rate; a zero threshold
    # ends the table and every later tier must be zero too
    previous_threshold: uint256 = 0
    previous_bps: uint256 = c.maintenance_margin_bps
    ended: bool = False
    for i: uint256 in range(market_types.MAX_TIERS):
        threshold: uint256 = r.tier_threshold_usd[i]
        bps: uint256 = r.tier_maintenance_bps[i]
        if threshold == 0:
            assert bps == 0, "config: bad tier"
            ended = True
            continue
        assert not ended and threshold > previous_threshold, "config: bad tier"
        assert threshold % MICRO_USD == 0 and threshold // MICRO_USD <= MAX_TIER_THRESHOLD, "config: bad tier"
        assert bps > previous_bps and bps <= MAX_MAINTENANCE_BPS, "config: bad tier"
        previous_threshold = threshold
        previous_bps = bps
    assert r.liquidation_fee_usd <= MAX_LIQUIDATION_FEE_USD and r.liquidation_fee_usd % MICRO_USD == 0, "config: bad liquidation fee"
    assert r.liquidation_fee_bps <= MAX_LIQUIDATION_FEE_BPS, "config: bad liquidation fee"
    # the fee must be payable out of the margin a position has when it becomes liquidatable
    # (at most half of the smallest maintenance): otherwise a pair of opposite positions
    # could farm the fund's and the pool's top-ups by liquidating one of them
    assert r.liquidation_fee_bps * 2 <= c.maintenance_margin_bps and r.liquidation_fee_usd * 2 <= c.min_maintenance_usd, "config: liquidation fee above half the maintenance"
    assert r.insurance_cut_bps <= MAX_INSURANCE_CUT_BPS, "config: bad insurance cut"
    assert r.max_pnl_factor_for_traders_bps != 0 and r.max_pnl_factor_for_traders_bps <= MAX_PNL_FACTOR_BPS, "config: bad pnl factor"
    assert r.max_pnl_factor_for_adl_bps <= MAX_PNL_FACTOR_BPS, "config: bad pnl factor"
    assert r.min_pnl_factor_after_adl_bps < r.max_pnl_factor_for_adl_bps, "config: bad pnl factor"


@internal
@view
def _reference_price(market: uint256) -> uint256:
    # the reference feed's latest answer as WAD (0 when the market has none)
    ref: ReferenceFeed = staticcall oracle.reference_feed(market)
    if ref.feed == empty(address):
        return 0
    answer: int256 = 0
    round_id: uint80 = 0
    started_at: uint256 = 0
    updated_at: uint256 = 0
    answered_in: uint80 = 0
    round_id, answer, started_at, updated_at, answered_in = staticcall IAggregatorV3(ref.feed).latestRoundData()
    assert answer > 0, "config: reference invalid"
    return convert(answer, uint256) * 10 ** (WAD_DECIMALS - ref.decimals)
