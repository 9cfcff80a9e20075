# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title perpool Perp
@notice Markets and isolated positions against the pool: open, increase, decrease and
        close at the oracle price with no slippage; position, borrowing and funding fees.
        Money moves only through the Vault's balanced `settle`; the Vault reads back only
        `pool_value`.
@dev Glossary (units as in contracts/lib/math.vy: WAD USD, WAD index tokens, token units):
     size_usd      position size in USD at entry (WAD)
     size_tokens   position size in index tokens (WAD); entry price = size_usd / size_tokens
     collateral    token units, isolated to the position
     borrow_index  per market, cumulative borrowing fee per USD of size (WAD); only grows
     funding_index per market side, cumulative funding per USD of size (WAD, signed):
                   falls while the side pays, rises while it receives
     PnL long      = size_tokens * price - size_usd;  short = size_usd - size_tokens * price
     pool value    = pool amount + pending borrowing - pending funding owed to traders
                     - capped net unrealised PnL, from per-market aggregates
     Rounding favours the pool: fees, losses and funding paid round up; profits, funding
     received and long size_tokens round down; short size_tokens round up.
     Per-side aggregates (open interest in USD and tokens, Σ size × index snapshot) change
     only in `_write_position`, the one function that changes a position.
@custom:security Every state-changing function holds the contract's reentrancy lock; the
     Vault's `settle` (the only outbound call that moves tokens) is called last.
@custom:kill The Configurator's `set_paused(True)` stops opening and increasing; closing,
     adding collateral, liquidation and ADL stay available. A market can be wound down:
     close-only, then settled at a fixed price.
"""

from contracts.interfaces import IOracle
from contracts.lib import math  # stateless helpers: no `initializes` needed
from contracts.lib import market_types
from contracts.lib import settlement

# ---------------------------------------------------------------- interfaces


interface IVault:
    def settle(s: settlement.Settlement): nonpayable
    def pool_amount() -> uint256: view
    def reserved_amount() -> uint256: view
    def insurance_amount() -> uint256: view
    def token_scale() -> uint256: view

# ---------------------------------------------------------------- constants

WAD: constant(uint256) = 10**18
BPS: constant(uint256) = 10_000
MAX_MARKETS: constant(uint256) = 16
SECONDS_PER_HOUR: constant(uint256) = 3_600
SECONDS_PER_YEAR: constant(uint256) = 31_536_000  # 365 days

MICRO_USD: constant(uint256) = 10**12  # WAD per micro-dollar: USD settings are stored in these
DEFAULT_MAX_PNL_FACTOR_BPS: constant(uint256) = 9_000  # trader profit in pool value
MAX_BATCH: constant(uint256) = 256  # positions per liquidation batch (~39k gas each: ~10M)

# market status (bits 240-247 of _config_a)
ACTIVE: constant(uint256) = 0
CLOSE_ONLY: constant(uint256) = 1  # wind-down: no new exposure
SETTLED: constant(uint256) = 2  # wind-down: every close uses the settlement price

# packed position slots
#   _pos_size[key]  = size_usd (128) | size_tokens (128)
#   _pos_state[key] = collateral (96) | borrow snapshot (80) | funding snapshot + 2**79 (80)
HALF: constant(uint256) = 128
MASK_128: constant(uint256) = 2**128 - 1
COLLATERAL_BITS: constant(uint256) = 96
MASK_COLLATERAL: constant(uint256) = 2**96 - 1
INDEX_BITS: constant(uint256) = 80
MASK_INDEX: constant(uint256) = 2**80 - 1
BORROW_OFFSET: constant(uint256) = 96
FUNDING_OFFSET: constant(uint256) = 176
FUNDING_BIAS: constant(int256) = 2**79  # signed snapshot stored biased

# packed market config, three slots (Vyper never packs; every trade reads the first two)
#   _config_a = max_leverage_bps (24) | position_fee_bps (16) | reserve_factor_bps (16)
#               | maintenance_margin_bps (16) | insurance_cut_bps (16)
#               | max_pnl_factor_for_traders_bps (16) | liquidation_fee_bps (16)
#               | min_collateral (40) | min_maintenance (40) | liquidation_fee (40)
#               | status byte (8: status (4) | direct fills off (1) | paused (1), the global
#               pause copied into every market's word so a trade reads no extra slot)
#               | tier floor (8): k with 2**k <= the first tier's threshold, so smaller
#               positions never read _risk (NO_TIERS when the table is empty)
#               (the three USD amounts in micro-dollars)
#   _config_b = max_open_interest_usd (112) | borrowing_factor (48) | funding_factor (48)
#               | max_funding_rate (48)
#   _risk     = 3 tiers of (threshold in micro-dollars (56) | maintenance bps (16)), read
#               by the health function only (ADL's factors live in the Configurator)
A_LEVERAGE: constant(uint256) = 0
A_FEE: constant(uint256) = 24
A_RESERVE: constant(uint256) = 40
A_MAINTENANCE: constant(uint256) = 56
A_INSURANCE_CUT: constant(uint256) = 72
A_TRADERS_CAP: constant(uint256) = 88
A_LIQ_FEE_BPS: constant(uint256) = 104
A_MIN_COLLATERAL: constant(uint256) = 120
A_MIN_MAINTENANCE: constant(uint256) = 160
A_LIQ_FEE_USD: constant(uint256) = 200
A_STATUS: constant(uint256) = 240
STATUS_BITS: constant(uint256) = 4  # the status byte: status in the low 4 bits
A_DIRECT_OFF: constant(uint256) = 244  # ... and a set bit here: direct fills off
A_PAUSED: constant(uint256) = 245  # ... and here: `paused`, copied into every market's word
A_TIER_FLOOR: constant(uint256) = 248
NO_TIERS: constant(uint256) = 255  # a tier floor no size reaches (sizes stay below 2**128)
MAX_THRESHOLD_BIT: constant(uint256) = 56
B_MAX_OI: constant(uint256) = 0
B_BORROWING: constant(uint256) = 112
B_FUNDING: constant(uint256) = 160
B_MAX_FUNDING: constant(uint256) = 208
R_TIER_BITS: constant(uint256) = 72
R_THRESHOLD_BITS: constant(uint256) = 56
BITS_BPS: constant(uint256) = 16
BITS_LEVERAGE: constant(uint256) = 24
BITS_MICRO_USD: constant(uint256) = 40
BITS_OI: constant(uint256) = 112
BITS_RATE: constant(uint256) = 48
MASK_RATES: constant(uint256) = 2**112 - 1  # _config_b without its rate factors
MASK_BPS: constant(uint256) = 2**16 - 1
MASK_BYTE: constant(uint256) = 2**8 - 1
MASK_MICRO_USD: constant(uint256) = 2**40 - 1
MASK_RATE: constant(uint256) = 2**48 - 1

# packed market state
#   _clock[m]    = last_update (32) | borrow_index (80) | pool amount at last_update (144),
#                  the utilisation denominator in force until the next accrual
#   _funding[m]  = funding index long + 2**127 (128) | funding index short + 2**127 (128)
#   _oi[side]    = open interest USD (128) | open interest tokens (128)
#   _sums[side]  = Σ size_usd × borrow snapshot / WAD (128)
#                  | Σ size_usd × funding snapshot / WAD + 2**127 (128)
TIME_BITS: constant(uint256) = 32
POOL_OFFSET: constant(uint256) = 112
MAX_RECEIVE_MULTIPLE: constant(uint256) = 10  # receivers get at most 10x the pay rate per USD
MASK_TIME: constant(uint256) = 2**32 - 1
WIDE_BIAS: constant(int256) = 2**127
MAX_WIDE: constant(int256) = 2**127 - 1
MAX_BORROW_INDEX: constant(uint256) = 2**80 - 1
MAX_ABS_FUNDING_INDEX: constant(int256) = 2**79 - 1
UNKNOWN_RESERVE: constant(int256) = min_value(int256)  # `_write_position` computes the change

# refusal codes of the trading paths (`_refuse`): the order book gets their reasons
REFUSED_UNKNOWN_MARKET: constant(uint256) = 1
REFUSED_NOTHING_TO_DO: constant(uint256) = 2
REFUSED_PAUSED: constant(uint256) = 3
REFUSED_MARKET_CLOSING: constant(uint256) = 4
REFUSED_ZERO_SIZE: constant(uint256) = 5
REFUSED_ZERO_COLLATERAL: constant(uint256) = 6
REFUSED_PRICE_NOT_ACCEPTABLE: constant(uint256) = 7
REFUSED_FEES_EXCEED_COLLATERAL: constant(uint256) = 8
REFUSED_NO_POSITION: constant(uint256) = 9
REFUSED_INSUFFICIENT_COLLATERAL: constant(uint256) = 10
REFUSED_MAX_OPEN_INTEREST: constant(uint256) = 11
REFUSED_RESERVE_EXCEEDED: constant(uint256) = 12
REFUSED_POSITION_TOO_SMALL: constant(uint256) = 13
REFUSED_COLLATERAL_BELOW_MIN: constant(uint256) = 14
REFUSED_LEVERAGE_TOO_HIGH: constant(uint256) = 15
REFUSED_WOULD_BE_LIQUIDATABLE: constant(uint256) = 16

# ---------------------------------------------------------------- structs

struct PositionRef:
    account: address
    market: uint256
    is_long: bool

struct Indices:
    borrow: uint256
    funding_long: int256
    funding_short: int256

# fees and flows of one position change, token units unless named
struct Settle:
    borrow_fee: uint256
    position_fee: uint256
    funding_paid: uint256
    funding_received: uint256
    pnl: int256  # realised, token units: profit rounded down, loss rounded up

# ---------------------------------------------------------------- immutables

oracle: public(immutable(IOracle))
vault: public(immutable(IVault))
token_scale: public(immutable(uint256))  # WAD per collateral token unit
configurator: public(immutable(address))  # sets markets, pause and wind-down (holds the roles)

# ---------------------------------------------------------------- storage

paused: public(bool)
max_pnl_factor_bps: public(uint256)  # cap on net trader profit counted in pool value
bad_debt_total: public(uint256)  # token units of shortfall the LPs absorbed, to date
settlement_price: public(HashMap[uint256, uint256])  # WAD, set when a market is settled
deleverager: public(address)  # the contract allowed to run ADL closes (RiskEngine)
order_book: public(address)  # the contract allowed to trade for accounts (OrderBook)

markets: public(DynArray[uint256, MAX_MARKETS])
_config_a: HashMap[uint256, uint256]  # packed: leverage, fees, factors, USD floors, status
_config_b: HashMap[uint256, uint256]  # packed: max open interest, rate factors
_risk: HashMap[uint256, uint256]  # packed: maintenance tiers


# per market, packed (see the constants):
_clock: HashMap[uint256, uint256]  # last_update | borrow_index | pool amount then
_funding: HashMap[uint256, uint256]  # funding index long | short, each biased by 2**127
# per market side (side id = market * 2 + is_long), packed:
_oi: HashMap[uint256, uint256]  # open interest USD | tokens
_sums: HashMap[uint256, uint256]  # Σ size × borrow snapshot | Σ size × funding snapshot (biased)

_pos_size: HashMap[bytes32, uint256]
_pos_state: HashMap[bytes32, uint256]

# ---------------------------------------------------------------- events

event PositionUpdate:
    key: indexed(bytes32)
    account: indexed(address)
    market: indexed(uint256)
    is_long: bool
    size_usd: uint256  # state after the change
    size_tokens: uint256
    collateral: uint256
    borrow_index: uint256
    funding_index: int256
    price: uint256  # fill price
    size_delta: int256  # WAD USD, > 0 increase, < 0 decrease
    collateral_in: uint256  # token units paid in
    amount_out: uint256  # token units paid out
    position_fee: uint256  # token units
    borrow_fee: uint256  # token units
    funding: int256  # token units, > 0 received
    pnl: int256  # token units realised
    bad_debt: uint256  # token units the pool could not collect

event Liquidation:
    key: indexed(bytes32)
    account: indexed(address)
    market: indexed(uint256)
    is_long: bool
    fee_receiver: address
    price: uint256  # WAD
    size_usd: uint256  # WAD, the size closed
    collateral: uint256  # token units the position held
    remaining: int256  # WAD USD: the health function's remaining value
    maintenance: uint256  # WAD USD
    fee: uint256  # token units paid to fee_receiver
    fee_from_insurance: uint256  # token units of the fee the insurance fund paid (the pool
    # paid the rest of what the position could not: fee - what it had left - this)
    insurance_cut: uint256  # token units

event BadDebt:
    key: indexed(bytes32)
    market: indexed(uint256)
    shortfall: uint256  # token units the position could not pay
    from_insurance: uint256
    from_lps: uint256

event MarketConfigured:
    market: indexed(uint256)
    config_a: uint256  # the packed words (decoded settings: the Configurator's events)
    config_b: uint256
    risk: uint256

event MarketStatusSet:
    market: indexed(uint256)
    status: uint256  # 0 active, 1 close-only, 2 settled
    settlement_price: uint256

event DeleveragerSet:
    deleverager: indexed(address)

event OrderBookSet:
    order_book: indexed(address)

event DirectFillsSet:
    market: indexed(uint256)
    enabled: bool

event PausedSet:
    paused: bool

event MaxPnlFactorSet:
    max_pnl_factor_bps: uint256


@deploy
def __init__(oracle_: address, vault_: address, configurator_: address):
    """
    @param oracle_ The perpool Oracle.
    @param vault_ The perpool Vault; Perp must be made its controller and pool value source.
    @param configurator_ The Configurator: the only caller of the market and pause setters.
    """
    oracle = IOracle(oracle_)
    vault = IVault(vault_)
    configurator = configurator_
    token_scale = staticcall IVault(vault_).token_scale()
    self.max_pnl_factor_bps = DEFAULT_MAX_PNL_FACTOR_BPS
    log MaxPnlFactorSet(max_pnl_factor_bps=DEFAULT_MAX_PNL_FACTOR_BPS)


# ---------------------------------------------------------------- traders


@external
def increase_position(
    market: uint256,
    is_long: bool,
    collateral_delta: uint256,
    size_delta: uint256,
    acceptable_price: uint256,
):
    """
    @notice Open or grow a position, or add collateral (size_delta = 0), at the oracle
            price: longs fill at the max price, shorts at the min. Pending borrowing and
            funding are settled into collateral first; the position fee is taken from it.
            Where direct fills are off, refused ("perp: direct fills off"): trade through
            the OrderBook there (collateral top-ups included: a direct change could decide
            whether a pending order fills, after its price is known).
    @param collateral_delta Token units pulled from the caller (approve the Vault first).
    @param size_delta WAD USD added to the size.
    @param acceptable_price Worst fill accepted: longs revert above it, shorts below it.
            Ignored when only collateral is added.
    """
    # refused where direct fills are off: `_increase` checks it (`must`), with the settings
    # word it reads anyway
    self._increase(msg.sender, market, is_long, collateral_delta, size_delta, acceptable_price, True)


@external
def decrease_position(
    market: uint256,
    is_long: bool,
    collateral_delta: uint256,
    size_delta: uint256,
    acceptable_price: uint256,
    receiver: address,
) -> uint256:
    """
    @notice Shrink or close a position, or withdraw collateral (size_delta = 0), at the
            oracle price: longs close at the min price, shorts at the max (a settled market
            closes at its settlement price). PnL is realised pro rata, and a profit is
            scaled down while the side's pnl factor exceeds max_pnl_factor_for_traders;
            profit is paid out with `collateral_delta`, losses and fees come out of
            collateral. Closing the whole size pays out everything left (collateral_delta
            is then ignored); a loss beyond the collateral is paid by the insurance fund,
            then by the LPs. Where direct fills are off, refused ("perp: direct fills off")
            while the market's keeper price is fresh: trade through the OrderBook; during a
            keeper outage this stays the way out, at the exit price.
    @param collateral_delta Token units of collateral to withdraw (partial decreases).
    @param size_delta WAD USD to close; the whole size closes the position.
    @param acceptable_price Worst fill accepted: longs revert below it, shorts above it.
    @param receiver Who gets the tokens paid out.
    @return Token units paid to `receiver`.
    """
    if self._a(market, A_DIRECT_OFF, 1) != 0:
        if not staticcall oracle.is_stale(market):
            self._fail("perp: direct fills off")
    if receiver == empty(address):
        self._fail("perp: zero receiver")
    code: uint256 = 0
    paid: uint256 = 0
    code, paid = self._trade_decrease(msg.sender, market, is_long, collateral_delta, size_delta, acceptable_price, receiver, True)
    return paid


@external
def trade_for(
    account: address,
    market: uint256,
    is_long: bool,
    is_increase: bool,
    collateral_delta: uint256,
    size_delta: uint256,
    acceptable_price: uint256,
) -> (uint256, uint256):
    """
    @notice An order's fill, by the order book (only): `increase_position` for `account`
            with the collateral escrowed in the Vault, or `decrease_position` for it at
            the fresh keeper price, a size beyond the position closing all of it and the
            payout credited to `account` in the Vault (`Vault.claim`): no transfer, so no
            receiver can stall the order book's batch.
    @dev A refusal is returned as a code (REFUSED_*; `OrderBook.reason` names it), with no position
         changed (the market's indices may have accrued), not reverted: the order book
         cancels that order and goes on with its batch, deciding each order without
         catching a revert.
    @return (0 when filled, else the refusal code; token units credited to `account`).
    """
    if msg.sender != self.order_book:
        self._fail("perp: not order book")
    if is_increase:
        return self._increase(account, market, is_long, collateral_delta, size_delta, acceptable_price, False), 0
    return self._trade_decrease(account, market, is_long, collateral_delta, size_delta, acceptable_price, account, False)


@external
def liquidate(account: address, market: uint256, is_long: bool, fee_receiver: address):
    """
    @notice Close an unhealthy position (remaining value below its maintenance margin, by
            the same health function as every other check): anyone may call. The caller's
            fee (liquidation_fee_usd + liquidation_fee_bps of size) is credited to
            `fee_receiver` in the Vault (`Vault.claim` pays it out),
            paid from what remains and topped up by the insurance fund (then the pool) when
            too little remains; the insurance fund takes its cut of the rest and the pool
            keeps what is left. A shortfall is paid by the insurance fund first, then by
            the LPs. Self-liquidation earns nothing beyond the fee.
    @dev Reverts "perp: no position", "perp: position healthy", or the Oracle's stale-price
         reason: liquidation uses the fresh keeper price (or a settled market's price).
    """
    if fee_receiver == empty(address):
        self._fail("perp: zero receiver")
    self._liquidate(PositionRef(account=account, market=market, is_long=is_long), fee_receiver, True)


@external
def liquidate_batch(positions: DynArray[PositionRef, MAX_BATCH], fee_receiver: address) -> uint256:
    """
    @notice Liquidate many positions in one transaction. Positions already gone or healthy
            again are skipped (decided by the health function, not by a revert), so
            competing keepers waste little. A stale price still reverts the batch.
    @return How many positions were liquidated.
    """
    if fee_receiver == empty(address):
        self._fail("perp: zero receiver")
    done: uint256 = 0
    for ref: PositionRef in positions:
        if self._liquidate(ref, fee_receiver, False):
            done += 1
    return done


@external
def adl_decrease(account: address, market: uint256, is_long: bool, size_delta: uint256) -> uint256:
    """
    @notice A forced close of `size_delta` of a position, at the fresh close price (a
            settled market's settlement price), paying its owner as a normal close. Only
            the deleverager (RiskEngine), which decides when: auto-deleveraging (trigger,
            clamp, target) and `RiskEngine.settle_position` in a settled market.
    @return Token units paid to `account`.
    """
    if msg.sender != self.deleverager:
        self._fail("perp: not deleverager")
    key: bytes32 = self._key(account, market, is_long)
    pos: market_types.Position = self._load(key)
    if pos.size_usd == 0:
        self._refuse(REFUSED_NO_POSITION, True)
    if size_delta == 0 or size_delta > pos.size_usd:
        self._fail("perp: bad size")
    code: uint256 = 0
    paid: uint256 = 0
    code, paid = self._decrease(key, account, market, is_long, pos, 0, size_delta, self._close_price(market, is_long, True), account, False, True)
    return paid


# ---------------------------------------------------------------- views


@view
@external
def pool_value(maximize: bool) -> uint256:
    """
    @notice The pool's value in WAD USD: pool amount + pending borrowing fees - pending
            funding owed to traders - net unrealised trader PnL, with trader profit capped
            at `max_pnl_factor_bps` of the pool amount. `maximize` prices PnL with the
            price that makes the pool worth more (longs at min, shorts at max); a settled
            market's positions at its settlement price. Reverts on a stale price in any
            other market with open interest.
    @dev The only view the Vault reads, from `deposit` and `redeem`.
    """
    pool: uint256 = staticcall vault.pool_amount() * token_scale
    assets: uint256 = pool
    trader_pnl: int256 = 0
    for market: uint256 in self.markets:
        idx: Indices = self._indices_now(market)
        long_oi: uint256 = self._oi[market * 2 + 1]
        short_oi: uint256 = self._oi[market * 2]
        if long_oi | short_oi == 0:
            continue
        # pending borrowing (an asset of the pool) and funding owed to traders net
        # (a liability), both Σ size × (index now - snapshot) from the side sums
        for is_long: bool in [True, False]:
            side: uint256 = market * 2 + convert(is_long, uint256)
            oi: uint256 = long_oi if is_long else short_oi
            usd: uint256 = oi & MASK_128
            if usd == 0:
                continue
            sums: uint256 = self._sums[side]
            assets += math.mul_div(usd, idx.borrow, WAD, False) - (sums & MASK_128)
            index: int256 = idx.funding_long if is_long else idx.funding_short
            trader_pnl += self._signed_mul_wad(usd, index) - (convert(sums >> HALF, int256) - WIDE_BIAS)
            # longs valued at the min price when maximizing the pool, shorts at the max; a
            # settled market at the price every one of its positions will close at
            p: uint256 = 0
            if self._a(market, A_STATUS, STATUS_BITS) == SETTLED:
                p = self.settlement_price[market]
            else:
                p = staticcall oracle.get_price(market, is_long != maximize)
            trader_pnl += math.pnl_usd(usd, oi >> HALF, p, is_long)
    cap: int256 = convert(math.bps_of(pool, self.max_pnl_factor_bps, False), int256)
    trader_pnl = min(trader_pnl, cap)
    value: int256 = convert(assets, int256) - trader_pnl
    if value < 0:
        return 0
    return convert(value, uint256)


@view
@external
def position_values(account: address, market: uint256, is_long: bool, price: uint256) -> market_types.PositionValues:
    """
    @notice A position's PnL, pending fees, remaining value and maintenance margin at
            `price` (WAD), by the health function; all zero for no position.
    """
    pos: market_types.Position = self._load(self._key(account, market, is_long))
    if pos.size_usd == 0:
        return empty(market_types.PositionValues)
    return self._values(pos, market, is_long, price, self._indices_now(market))


@view
@external
def close_price(market: uint256, is_long: bool) -> uint256:
    """
    @notice The price a position of this side closes at when a keeper acts (liquidation,
            ADL): the fresh keeper price (longs at the min, shorts at the max; reverts when
            stale), or a settled market's settlement price.
    """
    return self._close_price(market, is_long, True)


@view
@external
def current_rates(market: uint256) -> (uint256, int256, int256):
    """
    @notice (borrowing rate, funding rate long, funding rate short), WAD per second; funding
            > 0 the side receives. `PerpReader.rates` adds hourly and yearly figures.
    """
    f_long: int256 = 0
    f_short: int256 = 0
    f_long, f_short = self._funding_rates(market)
    return self._borrowing_rate(market), f_long, f_short


@view
@external
def is_liquidatable(account: address, market: uint256, is_long: bool) -> bool:
    """
    @notice True when `liquidate` would succeed now: a position whose remaining value is
            below its maintenance margin at the fresh close price (reverts when stale).
    """
    pos: market_types.Position = self._load(self._key(account, market, is_long))
    if pos.size_usd == 0:
        return False
    v: market_types.PositionValues = self._values(pos, market, is_long, self._close_price(market, is_long, True), self._indices_now(market))
    return v.remaining < convert(v.maintenance, int256)


@view
@external
def maintenance_margin(market: uint256, size_usd: uint256) -> uint256:
    """
    @notice The maintenance margin of a position of `size_usd` (WAD): the rate of its size
            tier times its size (rounded up), at least min_maintenance_usd.
    """
    return self._maintenance(market, size_usd, self._config_a[market])


@view
@external
def market_status(market: uint256) -> uint256:
    """
    @notice 0 active, 1 close-only (wind-down started), 2 settled at `settlement_price`.
    """
    return self._a(market, A_STATUS, STATUS_BITS)


@view
@external
def direct_fills(market: uint256) -> bool:
    """
    @notice False when traders must trade `market` through the order book.
    """
    return self._a(market, A_DIRECT_OFF, 1) == 0


@view
@external
def is_market(market: uint256) -> bool:
    """
    @notice True when `market` is listed.
    """
    return self._config_a[market] != 0


@view
@external
def position_key(account: address, market: uint256, is_long: bool) -> bytes32:
    """
    @notice The key of a position: keccak256(abi_encode(account, market, is_long)).
    """
    return self._key(account, market, is_long)


@view
@external
def get_position(account: address, market: uint256, is_long: bool) -> market_types.Position:
    """
    @notice The stored position (all zero when none).
    """
    return self._load(self._key(account, market, is_long))


@view
@external
def market_words(market: uint256) -> (uint256, uint256):
    """
    @notice A market's stored clock word (last update | borrow index | pool amount then)
            and funding word (long | short indices, each biased by 2**127), packed as
            documented at their declarations; `PerpReader.market_state` decodes them.
    """
    return self._clock[market], self._funding[market]


@view
@external
def current_indices(market: uint256) -> Indices:
    """
    @notice A market's borrowing and funding indices accrued to now.
    """
    return self._indices_now(market)


@view
@external
def open_interest(market: uint256, is_long: bool) -> (uint256, uint256):
    """
    @notice A side's open interest: (USD at entry, index tokens), both WAD.
    """
    oi: uint256 = self._oi[market * 2 + convert(is_long, uint256)]
    return oi & MASK_128, oi >> HALF


# ---------------------------------------------------------------- configurator


@external
def configure_market(market: uint256, c: market_types.MarketConfig, r: market_types.RiskConfig):
    """
    @notice List `market` (registered in the Oracle) or change its settings. Only the
            Configurator, which bounds every field and logs them decoded. Fees accrue to
            now under the old settings first, and the reserve follows the new factor.
    """
    self._only_configurator()
    old_reserved: uint256 = 0
    if self._config_a[market] == 0:
        if not staticcall oracle.is_market(market):
            self._fail("perp: unknown oracle market")
        self.markets.append(market)
        self._clock[market] = block.timestamp | (staticcall vault.pool_amount() << POOL_OFFSET)
        self._funding[market] = convert(WIDE_BIAS, uint256) | (convert(WIDE_BIAS, uint256) << HALF)
        # the funding sums are stored biased too
        self._sums[market * 2] = convert(WIDE_BIAS, uint256) << HALF
        self._sums[market * 2 + 1] = convert(WIDE_BIAS, uint256) << HALF
    else:
        # a settled market's fees stay stopped and its positions only close
        if self._a(market, A_STATUS, STATUS_BITS) == SETTLED:
            self._fail("perp: market settled")
        self._accrue(market)
        old_reserved = self._reserved_tokens(market)
    config_a: uint256 = (
        (c.max_leverage_bps << A_LEVERAGE)
        | (c.position_fee_bps << A_FEE)
        | (c.reserve_factor_bps << A_RESERVE)
        | (c.maintenance_margin_bps << A_MAINTENANCE)
        | (r.insurance_cut_bps << A_INSURANCE_CUT)
        | (r.max_pnl_factor_for_traders_bps << A_TRADERS_CAP)
        | (r.liquidation_fee_bps << A_LIQ_FEE_BPS)
        | (c.min_collateral_usd // MICRO_USD << A_MIN_COLLATERAL)
        | (c.min_maintenance_usd // MICRO_USD << A_MIN_MAINTENANCE)
        | (r.liquidation_fee_usd // MICRO_USD << A_LIQ_FEE_USD)
        | (self._a(market, A_STATUS, 8) << A_STATUS)
        | (convert(self.paused, uint256) << A_PAUSED)
    )
    config_b: uint256 = (
        (c.max_open_interest_usd << B_MAX_OI)
        | (c.borrowing_factor << B_BORROWING)
        | (c.funding_factor << B_FUNDING)
        | (c.max_funding_rate << B_MAX_FUNDING)
    )
    risk: uint256 = 0
    for i: uint256 in range(market_types.MAX_TIERS):
        risk |= ((r.tier_threshold_usd[i] // MICRO_USD) | (r.tier_maintenance_bps[i] << R_THRESHOLD_BITS)) << (i * R_TIER_BITS)
    config_a |= self._tier_floor(r.tier_threshold_usd[0] // MICRO_USD) << A_TIER_FLOOR
    self._config_a[market] = config_a
    self._config_b[market] = config_b
    self._risk[market] = risk
    log MarketConfigured(market=market, config_a=config_a, config_b=config_b, risk=risk)
    # the reserve follows the new factor at once
    reserved_delta: int256 = convert(self._reserved_tokens(market), int256) - convert(old_reserved, int256)
    if reserved_delta > 0 and convert(staticcall vault.reserved_amount(), int256) + reserved_delta > convert(staticcall vault.pool_amount(), int256):
        self._fail("perp: reserve exceeded")
    if reserved_delta != 0:
        self._settle(empty(address), 0, 0, 0, 0, empty(address), 0, reserved_delta, False)


@external
def set_market_status(market: uint256, status: uint256, settlement_price: uint256):
    """
    @notice Wind-down, only the Configurator: ACTIVE trades normally (a close-only market
            may be reopened); CLOSE_ONLY stops new exposure; SETTLED fixes
            the price every close, liquidation and `settle_position` uses and stops fee
            accrual (fees accrue to now first). A settled market stays settled.
    """
    self._only_configurator()
    if self._config_a[market] == 0:
        self._refuse(REFUSED_UNKNOWN_MARKET, True)
    if self._a(market, A_STATUS, STATUS_BITS) == SETTLED:
        self._fail("perp: market settled")
    if status > SETTLED:
        self._fail("perp: bad status")
    if status == SETTLED:
        self._accrue(market)
        self.settlement_price[market] = settlement_price
        # no more borrowing or funding: the indices stop where they are
        self._config_b[market] = self._config_b[market] & MASK_RATES
    # only the status bits change: the direct-fills flag and the tier floor stay
    self._config_a[market] = (self._config_a[market] & ~(((1 << STATUS_BITS) - 1) << A_STATUS)) | (status << A_STATUS)
    log MarketStatusSet(market=market, status=status, settlement_price=settlement_price)


@external
def set_deleverager(deleverager: address):
    """
    @notice The contract allowed to call `adl_decrease`; only the Configurator.
    """
    self._only_configurator()
    self.deleverager = deleverager
    log DeleveragerSet(deleverager=deleverager)


@external
def set_order_book(order_book: address):
    """
    @notice The contract allowed to call `increase_for` and `decrease_for` (the OrderBook,
            which checks its orders' timing and prices); only the Configurator.
    """
    self._only_configurator()
    self.order_book = order_book
    log OrderBookSet(order_book=order_book)


@external
def set_direct_fills(market: uint256, enabled: bool):
    """
    @notice Allow (or refuse) `increase_position` and `decrease_position` by traders in
            `market`; only the Configurator. With direct fills off, every change of a
            position goes through the order book and fills at a price newer than the order
            (a direct close stays open during a keeper outage). Liquidation, ADL and
            settlement are unaffected.
    """
    self._only_configurator()
    if self._config_a[market] == 0:
        self._refuse(REFUSED_UNKNOWN_MARKET, True)
    flag: uint256 = 1 << A_DIRECT_OFF
    if enabled:
        self._config_a[market] &= ~flag
    else:
        self._config_a[market] |= flag
    log DirectFillsSet(market=market, enabled=enabled)


@external
def set_paused(paused: bool):
    """
    @notice Stop (or resume) opening and increasing positions, only the Configurator.
            Closing, adding collateral, liquidation and ADL stay available.
    @dev The flag is also copied into the pause bit of every market's settings word
         (A_PAUSED), which the trading paths read instead (a word they read anyway);
         `configure_market` copies it into a new market's word.
    """
    self._only_configurator()
    if paused != self.paused:
        self.paused = paused
        # every market's bit equals `paused`, so a change flips them all
        for market: uint256 in self.markets:
            self._config_a[market] ^= 1 << A_PAUSED
    log PausedSet(paused=paused)


@external
def set_max_pnl_factor(max_pnl_factor_bps: uint256):
    """
    @notice Cap on net trader profit counted in the pool value, in bps of the pool amount;
            only the Configurator (which bounds it).
    """
    self._only_configurator()
    self.max_pnl_factor_bps = max_pnl_factor_bps
    log MaxPnlFactorSet(max_pnl_factor_bps=max_pnl_factor_bps)


# ---------------------------------------------------------------- internals: positions


@internal
@pure
def _key(account: address, market: uint256, is_long: bool) -> bytes32:
    return keccak256(abi_encode(account, market, is_long))


@internal
@view
def _load(key: bytes32) -> market_types.Position:
    size: uint256 = self._pos_size[key]
    if size == 0:
        return empty(market_types.Position)
    state: uint256 = self._pos_state[key]
    return market_types.Position(
        size_usd=size & MASK_128,
        size_tokens=size >> HALF,
        collateral=state & MASK_COLLATERAL,
        borrow_index=(state >> BORROW_OFFSET) & MASK_INDEX,
        funding_index=convert((state >> FUNDING_OFFSET) & MASK_INDEX, int256) - FUNDING_BIAS,
    )


@internal
def _write_position(key: bytes32, market: uint256, is_long: bool, old: market_types.Position, new: market_types.Position, known_reserved_delta: int256) -> int256:
    """
    @dev The one place a position changes, and with it every aggregate that depends on
         positions: open interest (USD, tokens), Σ size × index snapshots. Returns the
         change of the market's reserve in token units, which the caller passes to the
         Vault in the same `settle`: `known_reserved_delta` when the caller has computed
         it from the same open interest (an increase, by its cap check), else
         (UNKNOWN_RESERVE) computed here.
    """
    if not (new.size_usd <= MASK_128 and new.size_tokens <= MASK_128):
        self._fail("perp: size too large")
    if new.collateral > MASK_COLLATERAL:
        self._fail("perp: collateral too large")
    # a position must hold some index tokens, or it has no entry price
    if new.size_usd != 0 and new.size_tokens == 0:
        self._fail("perp: position too small")
    side: uint256 = market * 2 + convert(is_long, uint256)
    oi: uint256 = self._oi[side]
    usd: uint256 = (oi & MASK_128) + new.size_usd - old.size_usd
    tokens: uint256 = (oi >> HALF) + new.size_tokens - old.size_tokens
    if not (usd <= MASK_128 and tokens <= MASK_128):
        self._fail("perp: aggregate overflow")
    self._oi[side] = usd | (tokens << HALF)
    # the sums round down on both sides; pool_value's pending terms are estimates
    sums: uint256 = self._sums[side]
    borrow_sum: uint256 = sums & MASK_128
    funding_sum: int256 = convert(sums >> HALF, int256)
    # the new position's terms in, then the old one's out (an empty one has none: an open
    # or a close skips its products)
    if new.size_usd != 0:
        borrow_sum += math.mul_div(new.size_usd, new.borrow_index, WAD, False)
        funding_sum += self._signed_mul_wad(new.size_usd, new.funding_index)
    if old.size_usd != 0:
        borrow_sum -= math.mul_div(old.size_usd, old.borrow_index, WAD, False)
        funding_sum -= self._signed_mul_wad(old.size_usd, old.funding_index)
    if not (borrow_sum <= MASK_128 and funding_sum >= 0 and funding_sum <= convert(MASK_128, int256)):
        self._fail("perp: aggregate overflow")
    self._sums[side] = borrow_sum | (convert(funding_sum, uint256) << HALF)
    reserved_delta: int256 = known_reserved_delta
    if reserved_delta == UNKNOWN_RESERVE:
        reserved_delta = 0
        if new.size_usd != old.size_usd:
            other: uint256 = self._oi[side ^ 1] & MASK_128
            reserved_delta = self._reserve_change(market, (oi & MASK_128) + other, usd + other)

    if new.size_usd == 0:
        self._pos_size[key] = 0
        self._pos_state[key] = 0
        return reserved_delta
    self._pos_size[key] = new.size_usd | (new.size_tokens << HALF)
    self._pos_state[key] = (
        new.collateral
        | (new.borrow_index << BORROW_OFFSET)
        | (convert(new.funding_index + FUNDING_BIAS, uint256) << FUNDING_OFFSET)
    )
    return reserved_delta


@internal
@view
def _check_position(pos: market_types.Position, market: uint256, is_long: bool, price: uint256, idx: Indices, must: bool) -> uint256:
    # the rules a position left open by a trade must meet (0 when it does, else a refusal)
    if pos.size_tokens == 0:
        return self._refuse(REFUSED_POSITION_TOO_SMALL, must)
    collateral_wad: uint256 = pos.collateral * token_scale
    config_a: uint256 = self._config_a[market]
    if collateral_wad < ((config_a >> A_MIN_COLLATERAL) & MASK_MICRO_USD) * MICRO_USD:
        return self._refuse(REFUSED_COLLATERAL_BELOW_MIN, must)
    if pos.size_usd * BPS > ((config_a >> A_LEVERAGE) & (2**BITS_LEVERAGE - 1)) * collateral_wad:
        return self._refuse(REFUSED_LEVERAGE_TOO_HIGH, must)
    v: market_types.PositionValues = self._values(pos, market, is_long, price, idx)
    if v.remaining < convert(v.maintenance, int256):
        return self._refuse(REFUSED_WOULD_BE_LIQUIDATABLE, must)
    return 0


@internal
@view
def _values(pos: market_types.Position, market: uint256, is_long: bool, price: uint256, idx: Indices) -> market_types.PositionValues:
    """
    @dev The one health function, behind opening, decreasing, `liquidate` and the views: a
         position is liquidatable when remaining < maintenance.
         remaining = collateral + PnL - pending borrowing - pending funding paid
         (+ received) - close fee, against the tiered maintenance margin. Costs round up,
         gains down.
    """
    config_a: uint256 = self._config_a[market]
    v: market_types.PositionValues = market_types.PositionValues(
        pnl=math.pnl_usd(pos.size_usd, pos.size_tokens, price, is_long),
        borrowing_fee=math.mul_div(pos.size_usd, idx.borrow - pos.borrow_index, WAD, True),
        funding=self._funding_wad(pos, is_long, idx),
        close_fee=math.bps_of(pos.size_usd, (config_a >> A_FEE) & MASK_BPS, True),
        remaining=0,
        maintenance=self._maintenance(market, pos.size_usd, config_a),
    )
    v.remaining = convert(pos.collateral * token_scale, int256) + v.pnl + v.funding - convert(v.borrowing_fee + v.close_fee, int256)
    return v


@internal
@view
def _maintenance(market: uint256, size_usd: uint256, config_a: uint256) -> uint256:
    """
    @dev max(size x the rate of the size's tier, min_maintenance_usd), rounded up. The base
         rate applies from size 0; each tier's rate from its threshold up (thresholds and
         rates increase; a zero threshold ends the table). `config_a`: the market's
         settings word, which the caller has read.
    """
    bps: uint256 = (config_a >> A_MAINTENANCE) & MASK_BPS
    floor_usd: uint256 = ((config_a >> A_MIN_MAINTENANCE) & MASK_MICRO_USD) * MICRO_USD
    if size_usd // MICRO_USD < 1 << ((config_a >> A_TIER_FLOOR) & MASK_BYTE):
        # below the first tier: the base rate, without reading the tier slot
        return max(math.bps_of(size_usd, bps, True), floor_usd)
    risk: uint256 = self._risk[market]
    for i: uint256 in range(market_types.MAX_TIERS):
        tier: uint256 = (risk >> (i * R_TIER_BITS)) & ((1 << R_TIER_BITS) - 1)
        threshold: uint256 = (tier & ((1 << R_THRESHOLD_BITS) - 1)) * MICRO_USD
        if threshold == 0 or size_usd < threshold:
            break
        bps = tier >> R_THRESHOLD_BITS
    return max(math.bps_of(size_usd, bps, True), floor_usd)


@internal
@view
def _pnl_tokens(size_usd: uint256, size_tokens: uint256, price: uint256, is_long: bool) -> int256:
    return self._signed_tokens(math.pnl_usd(size_usd, size_tokens, price, is_long))


@internal
@view
def _signed_tokens(wad: int256) -> int256:
    # a gain to the position rounds down, a cost up (away from zero)
    if wad >= 0:
        return convert(self._to_tokens(convert(wad, uint256), False), int256)
    return -convert(self._to_tokens(convert(-wad, uint256), True), int256)


@internal
@view
def _to_tokens(wad: uint256, round_up: bool) -> uint256:
    return math.mul_div(wad, 1, token_scale, round_up)


@internal
@view
def _pending(pos: market_types.Position, is_long: bool, idx: Indices) -> Settle:
    """
    @dev Borrowing and funding accrued on `pos` since its last touch, in token units:
         borrowing and funding paid round up, funding received rounds down.
    """
    s: Settle = empty(Settle)
    if pos.size_usd == 0:
        return s
    # one division for WAD USD then tokens, both rounded up: ceil(ceil(a / b) / c) == ceil(a / (b c))
    s.borrow_fee = math.mul_div(pos.size_usd, idx.borrow - pos.borrow_index, WAD * token_scale, True)
    funding: int256 = self._funding_wad(pos, is_long, idx)
    if funding >= 0:
        s.funding_received = self._to_tokens(convert(funding, uint256), False)
    else:
        s.funding_paid = self._to_tokens(convert(-funding, uint256), True)
    return s


@internal
@pure
def _funding_wad(pos: market_types.Position, is_long: bool, idx: Indices) -> int256:
    # > 0: received, rounded down; < 0: paid, rounded up (away from zero)
    now: int256 = idx.funding_long if is_long else idx.funding_short
    delta: int256 = now - pos.funding_index
    if delta >= 0:
        return convert(math.mul_div(pos.size_usd, convert(delta, uint256), WAD, False), int256)
    return -convert(math.mul_div(pos.size_usd, convert(-delta, uint256), WAD, True), int256)


@internal
@pure
def _signed_mul_wad(x: uint256, y: int256) -> int256:
    # x * y / WAD, truncated toward zero (aggregates only)
    if y >= 0:
        return convert(math.mul_div(x, convert(y, uint256), WAD, False), int256)
    return -convert(math.mul_div(x, convert(-y, uint256), WAD, False), int256)


@internal
@view
def _reserved_tokens(market: uint256) -> uint256:
    return self._reserve_of(self._a(market, A_RESERVE, BITS_BPS), self._open_interest_usd(market))


@internal
@view
def _reserve_change(market: uint256, before_usd: uint256, after_usd: uint256) -> int256:
    # the change of the market's reserve in tokens when its open interest (both sides)
    # moves from before_usd to after_usd
    factor: uint256 = self._a(market, A_RESERVE, BITS_BPS)
    return convert(self._reserve_of(factor, after_usd), int256) - convert(self._reserve_of(factor, before_usd), int256)


@internal
@view
def _reserve_of(reserve_factor_bps: uint256, open_interest_usd: uint256) -> uint256:
    # the market's share of the Vault's reserved amount: its reserve in tokens, rounded up
    # rounded up to USD then to tokens in one division: ceil(ceil(a / b) / c) == ceil(a / (b c))
    return math.mul_div(open_interest_usd, reserve_factor_bps, BPS * token_scale, True)


@internal
@view
def _open_interest_usd(market: uint256) -> uint256:
    # both sides, WAD USD at entry
    return (self._oi[market * 2] & MASK_128) + (self._oi[market * 2 + 1] & MASK_128)


# ---------------------------------------------------------------- internals: rates


@internal
@view
def _borrowing_rate(market: uint256) -> uint256:
    return self._borrowing_rate_of(self._clock[market], self._open_interest_usd(market), self._config_a[market], self._config_b[market])


@internal
@view
def _borrowing_rate_of(clock: uint256, open_interest: uint256, config_a: uint256, config_b: uint256) -> uint256:
    """
    @dev borrowing_factor x utilisation, utilisation = reserved / pool amount (capped at
         100 %), WAD per second, rounded up. The pool amount is the one recorded at the
         market's last accrual: each interval is charged at the rate in force when it began,
         so an LP deposit just before a touch cannot cut fees already accrued. The recorded
         amount, not the PnL-adjusted value, so price swings do not move the rate. Takes the
         market's words, read once by the caller.
    """
    reserved: uint256 = math.bps_of(open_interest, (config_a >> A_RESERVE) & MASK_BPS, True)
    if reserved == 0:
        return 0
    pool: uint256 = (clock >> POOL_OFFSET) * token_scale
    utilisation: uint256 = WAD
    if pool != 0:
        utilisation = min(math.mul_div(reserved, WAD, pool, True), WAD)
    return math.mul_div((config_b >> B_BORROWING) & MASK_RATE, utilisation, WAD, True)


@internal
@view
def _funding_rates(market: uint256) -> (int256, int256):
    return self._funding_rates_of(self._oi[market * 2 + 1] & MASK_128, self._oi[market * 2] & MASK_128, self._config_b[market])


@internal
@pure
def _funding_rates_of(oi_long: uint256, oi_short: uint256, config_b: uint256) -> (int256, int256):
    """
    @dev The heavier side pays funding_factor x |long - short| / (long + short), capped at
         max_funding_rate, per USD of its size per second (rounded up); the lighter side
         receives what was paid, spread over its smaller size (rounded down), but at most
         MAX_RECEIVE_MULTIPLE x the pay rate: a dust position cannot collect a whole side's
         funding, and what it cannot take stays in the pool, whose LPs carry the skew.
         Nothing accrues while either side is empty. Returns (long, short), > 0 = receives.
    """
    if oi_long == 0 or oi_short == 0 or oi_long == oi_short:
        return 0, 0
    skew: uint256 = math.abs_diff(oi_long, oi_short)
    pay: uint256 = min(
        math.mul_div((config_b >> B_FUNDING) & MASK_RATE, skew, oi_long + oi_short, True),
        config_b >> B_MAX_FUNDING,
    )
    if oi_long > oi_short:
        return -convert(pay, int256), convert(self._received(pay, oi_long, oi_short), int256)
    return convert(self._received(pay, oi_short, oi_long), int256), -convert(pay, int256)


@internal
@pure
def _received(paid: uint256, payer_oi: uint256, receiver_oi: uint256) -> uint256:
    # per USD of the receiving side: what the payers paid, spread over it (rounded down),
    # capped at MAX_RECEIVE_MULTIPLE x the per-USD payment
    return min(math.mul_div(paid, payer_oi, receiver_oi, False), paid * MAX_RECEIVE_MULTIPLE)


@internal
@view
def _indices_now(market: uint256) -> Indices:
    # every word read once: clock, funding, both sides' open interest, the settings
    clock: uint256 = self._clock[market]
    funding: uint256 = self._funding[market]
    idx: Indices = Indices(
        borrow=(clock >> TIME_BITS) & MASK_INDEX,
        funding_long=convert(funding & MASK_128, int256) - WIDE_BIAS,
        funding_short=convert(funding >> HALF, int256) - WIDE_BIAS,
    )
    dt: uint256 = block.timestamp - (clock & MASK_TIME)
    if dt == 0:
        return idx
    oi_long: uint256 = self._oi[market * 2 + 1] & MASK_128
    oi_short: uint256 = self._oi[market * 2] & MASK_128
    config_b: uint256 = self._config_b[market]
    idx.borrow += self._borrowing_rate_of(clock, oi_long + oi_short, self._config_a[market], config_b) * dt
    f_long: int256 = 0
    f_short: int256 = 0
    f_long, f_short = self._funding_rates_of(oi_long, oi_short, config_b)
    if f_long != 0:
        # the receiving side's increment is derived from the payer's, so Σ received <= Σ paid
        paid: uint256 = 0
        if f_long < 0:
            paid = convert(-f_long, uint256) * dt
            idx.funding_long -= convert(paid, int256)
            idx.funding_short += convert(self._received(paid, oi_long, oi_short), int256)
        else:
            paid = convert(-f_short, uint256) * dt
            idx.funding_short -= convert(paid, int256)
            idx.funding_long += convert(self._received(paid, oi_short, oi_long), int256)
    if idx.borrow > MAX_BORROW_INDEX:
        self._fail("perp: index overflow")
    if not (idx.funding_long <= MAX_ABS_FUNDING_INDEX and idx.funding_long >= -MAX_ABS_FUNDING_INDEX):
        self._fail("perp: index overflow")
    if not (idx.funding_short <= MAX_ABS_FUNDING_INDEX and idx.funding_short >= -MAX_ABS_FUNDING_INDEX):
        self._fail("perp: index overflow")
    return idx


@internal
def _accrue(market: uint256) -> Indices:
    """
    @dev Bring the market's indices to now and record the pool amount whose utilisation
         prices the next interval. The pool amount is refreshed on every touch, even
         within the second of the last accrual: a zero-length interval charges nothing.
    """
    idx: Indices = self._indices_now(market)
    old: uint256 = self._clock[market]
    clock: uint256 = block.timestamp | (idx.borrow << TIME_BITS) | (staticcall vault.pool_amount() << POOL_OFFSET)
    if clock == old:
        return idx
    self._clock[market] = clock
    if old & MASK_TIME == block.timestamp:
        return idx  # same second: only the pool amount changed
    # no event of its own: every accrual happens inside a change that logs one, whose
    # PositionUpdate carries the touched side's indices (`current_indices` has the rest)
    self._funding[market] = convert(idx.funding_long + WIDE_BIAS, uint256) | (convert(idx.funding_short + WIDE_BIAS, uint256) << HALF)
    return idx


# ---------------------------------------------------------------- internals: trading


@internal
def _increase(
    account: address,
    market: uint256,
    is_long: bool,
    collateral_delta: uint256,
    size_delta: uint256,
    acceptable_price: uint256,
    must: bool,
) -> uint256:
    """
    @dev Every increase. `must`: a refusal reverts (a trader's own call, refused first of
         all where direct fills are off), otherwise it is returned (the order book's):
         every check comes before the first write to the position and its aggregates.
         Collateral comes from `account` (must) or from the order book's escrow in the Vault.
    """
    # the market's settings word, read once: direct fills, listed, paused (the global
    # pause's copy, so `paused` is not read), status, position fee, insurance cut
    config_a: uint256 = self._config_a[market]
    if must and config_a & (1 << A_DIRECT_OFF) != 0:
        self._fail("perp: direct fills off")
    if config_a == 0:
        return self._refuse(REFUSED_UNKNOWN_MARKET, must)
    if collateral_delta == 0 and size_delta == 0:
        return self._refuse(REFUSED_NOTHING_TO_DO, must)
    key: bytes32 = self._key(account, market, is_long)
    pos: market_types.Position = self._load(key)
    if size_delta != 0:
        if config_a & (1 << A_PAUSED) != 0:
            return self._refuse(REFUSED_PAUSED, must)
        if (config_a >> A_STATUS) & ((1 << STATUS_BITS) - 1) != ACTIVE:
            return self._refuse(REFUSED_MARKET_CLOSING, must)
    if pos.size_usd == 0:
        if size_delta == 0:
            return self._refuse(REFUSED_ZERO_SIZE, must)
        if collateral_delta == 0:
            return self._refuse(REFUSED_ZERO_COLLATERAL, must)

    price: uint256 = 0
    if size_delta != 0:
        price = staticcall oracle.get_price(market, is_long)
        if is_long:
            if price > acceptable_price:
                return self._refuse(REFUSED_PRICE_NOT_ACCEPTABLE, must)
        else:
            if price < acceptable_price:
                return self._refuse(REFUSED_PRICE_NOT_ACCEPTABLE, must)
    # adding collateral alone needs no price (none is used): it works even when every price
    # source is down, and the event logs price 0

    idx: Indices = self._accrue(market)
    s: Settle = self._pending(pos, is_long, idx)
    # the fee in USD then in tokens, both rounded up, in one division (ceil(ceil(a / b) / c)
    # == ceil(a / (b c)))
    s.position_fee = math.mul_div(size_delta, (config_a >> A_FEE) & MASK_BPS, BPS * token_scale, True)

    gross: uint256 = pos.collateral + collateral_delta + s.funding_received
    owed: uint256 = s.borrow_fee + s.position_fee + s.funding_paid
    if gross < owed:
        return self._refuse(REFUSED_FEES_EXCEED_COLLATERAL, must)

    new: market_types.Position = market_types.Position(
        size_usd=pos.size_usd + size_delta,
        # longs get fewer tokens (rounded down), shorts owe more (rounded up)
        size_tokens=pos.size_tokens + (math.mul_div(size_delta, WAD, price, not is_long) if size_delta != 0 else 0),
        collateral=gross - owed,
        borrow_index=idx.borrow,
        funding_index=idx.funding_long if is_long else idx.funding_short,
    )
    # adding collateral alone only reduces risk: allowed even to an unhealthy position (and
    # changes no reserve)
    reserved_delta: int256 = 0
    if size_delta != 0:
        # the caps, before the write: the side's open interest and the Vault's reserve after
        # the trade (the reserve change is the one `_write_position` then books). `_accrue`
        # has just recorded the Vault's pool amount in the clock word: read there
        side: uint256 = market * 2 + convert(is_long, uint256)
        usd: uint256 = (self._oi[side] & MASK_128) + size_delta
        if usd > self._b(market, B_MAX_OI, BITS_OI):
            return self._refuse(REFUSED_MAX_OPEN_INTEREST, must)
        other: uint256 = self._oi[side ^ 1] & MASK_128
        reserved_delta = self._reserve_change(market, usd - size_delta + other, usd + other)
        if convert(staticcall vault.reserved_amount(), int256) + reserved_delta > convert(self._clock[market] >> POOL_OFFSET, int256):
            return self._refuse(REFUSED_RESERVE_EXCEEDED, must)
        code: uint256 = self._check_position(new, market, is_long, price, idx, must)
        if code != 0:
            return code
    reserved_delta = self._write_position(key, market, is_long, pos, new, reserved_delta)
    log PositionUpdate(
        key=key,
        account=account,
        market=market,
        is_long=is_long,
        size_usd=new.size_usd,
        size_tokens=new.size_tokens,
        collateral=new.collateral,
        borrow_index=new.borrow_index,
        funding_index=new.funding_index,
        price=price,
        size_delta=convert(size_delta, int256),
        collateral_in=collateral_delta,
        amount_out=0,
        position_fee=s.position_fee,
        borrow_fee=s.borrow_fee,
        funding=convert(s.funding_received, int256) - convert(s.funding_paid, int256),
        pnl=0,
        bad_debt=0,
    )
    # collateral bucket: + paid in - fees - funding paid + funding received; the pool
    # takes the fees and funding paid and fronts funding received, less the insurance cut
    cut: uint256 = math.bps_of(s.position_fee, (config_a >> A_INSURANCE_CUT) & MASK_BPS, False)  # as `_insurance_cut`
    fees_to_pool: int256 = convert(owed, int256) - convert(s.funding_received, int256)
    self._settle(
        account if must else empty(address),
        collateral_delta,
        fees_to_pool - convert(cut, int256),
        convert(collateral_delta, int256) - fees_to_pool,
        convert(cut, int256),
        empty(address),
        0,
        reserved_delta,
        False,
    )
    return 0


# ---------------------------------------------------------------- internals: closing and risk


@internal
def _trade_decrease(
    account: address,
    market: uint256,
    is_long: bool,
    collateral_delta: uint256,
    size_delta: uint256,
    acceptable_price: uint256,
    receiver: address,
    must: bool,
) -> (uint256, uint256):
    """
    @dev A trader's decrease, direct (`must`: refusals revert, the payout is transferred)
         or by the order book (refusals returned, the size clamped to the position, the
         payout credited to `receiver`).
    """
    if self._config_a[market] == 0:
        return self._refuse(REFUSED_UNKNOWN_MARKET, must), 0
    if collateral_delta == 0 and size_delta == 0:
        return self._refuse(REFUSED_NOTHING_TO_DO, must), 0
    key: bytes32 = self._key(account, market, is_long)
    pos: market_types.Position = self._load(key)
    if pos.size_usd == 0:
        return self._refuse(REFUSED_NO_POSITION, must), 0
    size: uint256 = size_delta
    if size > pos.size_usd:
        if must:
            self._fail("perp: size exceeds position")
        size = pos.size_usd
    # withdrawing collateral adds risk: it needs a fresh keeper price (as does every order)
    price: uint256 = self._close_price(market, is_long, not must or (collateral_delta != 0 and size != pos.size_usd))
    if size != 0:
        if is_long:
            if price < acceptable_price:
                return self._refuse(REFUSED_PRICE_NOT_ACCEPTABLE, must), 0
        else:
            if price > acceptable_price:
                return self._refuse(REFUSED_PRICE_NOT_ACCEPTABLE, must), 0
    return self._decrease(key, account, market, is_long, pos, collateral_delta, size, price, receiver, True, must)


@internal
def _decrease(
    key: bytes32,
    account: address,
    market: uint256,
    is_long: bool,
    pos: market_types.Position,
    collateral_delta: uint256,
    size_delta: uint256,
    price: uint256,
    receiver: address,
    checked: bool,
    must: bool,
) -> (uint256, uint256):
    """
    @dev Every decrease and close but liquidation: by the trader, by ADL and by settlement.
         `checked`: a partial decrease must leave a valid position (min collateral,
         leverage, health); an ADL close is forced on the owner, so it is not refused for
         what remains (the remainder can be liquidated like any other position).
         `must`: refusals revert and the payout is transferred; otherwise (the order
         book) refusals are returned before any write to the position and the payout is
         credited to `receiver`.
    """
    closing: bool = size_delta == pos.size_usd
    idx: Indices = self._accrue(market)
    s: Settle = self._pending(pos, is_long, idx)
    # rounded up twice, in one division: ceil(ceil(a / b) / c) == ceil(a / (b c))
    s.position_fee = math.mul_div(size_delta, self._a(market, A_FEE, BITS_BPS), BPS * token_scale, True)
    tokens_closed: uint256 = pos.size_tokens
    if not closing:
        # long: fewer tokens closed (less profit now); short: more (less profit now)
        tokens_closed = math.mul_div(pos.size_tokens, size_delta, pos.size_usd, not is_long)
    s.pnl = self._pnl_tokens(size_delta, tokens_closed, price, is_long)
    if s.pnl > 0:
        s.pnl = self._cap_profit(market, is_long, s.pnl, price)

    # everything owed to (+) or by (-) the position, token units
    settle: int256 = s.pnl + convert(s.funding_received, int256) - convert(s.borrow_fee + s.position_fee + s.funding_paid, int256)
    collateral: int256 = convert(pos.collateral, int256)
    amount_out: uint256 = 0
    shortfall: uint256 = 0
    new: market_types.Position = empty(market_types.Position)
    if closing:
        left: int256 = collateral + settle
        if left > 0:
            amount_out = convert(left, uint256)
        else:
            shortfall = convert(-left, uint256)
    else:
        if collateral_delta > pos.collateral:
            return self._refuse(REFUSED_INSUFFICIENT_COLLATERAL, must), 0
        remaining: int256 = collateral - convert(collateral_delta, int256)
        if settle >= 0:
            amount_out = collateral_delta + convert(settle, uint256)
        else:
            remaining += settle
            if remaining < 0:
                return self._refuse(REFUSED_INSUFFICIENT_COLLATERAL, must), 0
            amount_out = collateral_delta
        new = market_types.Position(
            size_usd=pos.size_usd - size_delta,
            size_tokens=pos.size_tokens - tokens_closed,
            collateral=convert(remaining, uint256),
            borrow_index=idx.borrow,
            funding_index=idx.funding_long if is_long else idx.funding_short,
        )

    if checked and not closing:
        code: uint256 = self._check_position(new, market, is_long, price, idx, must)
        if code != 0:
            return code, 0
    reserved_delta: int256 = self._write_position(key, market, is_long, pos, new, UNKNOWN_RESERVE)
    # the insurance fund takes its cut of a fee actually collected, or covers a shortfall
    insurance_delta: int256 = 0
    if shortfall == 0:
        insurance_delta = convert(self._insurance_cut(self._config_a[market], s.position_fee), int256)
    else:
        insurance_delta = -convert(self._cover(key, market, shortfall, staticcall vault.insurance_amount()), int256)
    log PositionUpdate(
        key=key,
        account=account,
        market=market,
        is_long=is_long,
        size_usd=new.size_usd,
        size_tokens=new.size_tokens,
        collateral=new.collateral,
        borrow_index=new.borrow_index,
        funding_index=new.funding_index,
        price=price,
        size_delta=-convert(size_delta, int256),
        collateral_in=0,
        amount_out=amount_out,
        position_fee=s.position_fee,
        borrow_fee=s.borrow_fee,
        funding=convert(s.funding_received, int256) - convert(s.funding_paid, int256),
        pnl=s.pnl,
        bad_debt=shortfall,
    )
    # the collateral bucket gives up the position's change in collateral; the pool
    # pays what goes out beyond that (or keeps what the position lost)
    collateral_change: int256 = convert(new.collateral, int256) - collateral
    pool_change: int256 = -convert(amount_out, int256) - collateral_change - insurance_delta
    self._settle(empty(address), 0, pool_change, collateral_change, insurance_delta, receiver, amount_out, reserved_delta, not must)
    return 0, amount_out


@internal
def _liquidate(ref: PositionRef, fee_receiver: address, must: bool) -> bool:
    """
    @dev Liquidate if the health function (`_values`) says so; otherwise revert (`must`) or return False (batch).
    """
    key: bytes32 = self._key(ref.account, ref.market, ref.is_long)
    pos: market_types.Position = self._load(key)
    if pos.size_usd == 0:
        if must:
            self._refuse(REFUSED_NO_POSITION, True)
        return False
    market: uint256 = ref.market
    price: uint256 = self._close_price(market, ref.is_long, True)
    idx: Indices = self._accrue(market)
    v: market_types.PositionValues = self._values(pos, market, ref.is_long, price, idx)
    if v.remaining >= convert(v.maintenance, int256):
        if must:
            self._fail("perp: position healthy")
        return False

    # what a full close would leave, token units, rounded as `_decrease` rounds each term:
    # gains down, costs up (the close fee included)
    close_fee: uint256 = self._to_tokens(v.close_fee, True)
    left: int256 = (
        convert(pos.collateral, int256)
        + self._signed_tokens(v.pnl)
        + self._signed_tokens(v.funding)
        - convert(self._to_tokens(v.borrowing_fee, True) + close_fee, int256)
    )
    # the liquidator's fee, a payout: rounded down
    config_a: uint256 = self._config_a[market]
    fee: uint256 = self._to_tokens(
        ((config_a >> A_LIQ_FEE_USD) & MASK_MICRO_USD) * MICRO_USD
        + math.bps_of(pos.size_usd, (config_a >> A_LIQ_FEE_BPS) & MASK_BPS, False),
        False,
    )
    equity: uint256 = 0
    shortfall: uint256 = 0
    if left >= 0:
        equity = convert(left, uint256)
    else:
        shortfall = convert(-left, uint256)
    from_position: uint256 = min(equity, fee)
    topup: uint256 = fee - from_position
    # the fund's cut of what the pool keeps of the collateral: the close fee (when collected)
    # and the remainder, never more than the collateral (a profit forfeited is not collected)
    cut: uint256 = 0
    if shortfall == 0:
        kept: uint256 = min(close_fee + equity, pos.collateral)
        if kept > from_position:
            cut = self._insurance_cut(config_a, kept - from_position)
    # the insurance fund tops the fee up first, then covers the shortfall, as far as it can
    from_insurance: uint256 = 0
    cover: uint256 = 0
    if topup != 0 or shortfall != 0:
        fund: uint256 = staticcall vault.insurance_amount() + cut
        from_insurance = min(topup, fund)
        cover = self._cover(key, market, shortfall, fund - from_insurance)

    reserved_delta: int256 = self._write_position(key, market, ref.is_long, pos, empty(market_types.Position), UNKNOWN_RESERVE)
    log Liquidation(
        key=key,
        account=ref.account,
        market=market,
        is_long=ref.is_long,
        fee_receiver=fee_receiver,
        price=price,
        size_usd=pos.size_usd,
        collateral=pos.collateral,
        remaining=v.remaining,
        maintenance=v.maintenance,
        fee=fee,
        fee_from_insurance=from_insurance,
        insurance_cut=cut,
    )
    # collateral leaves its bucket; the liquidator is paid; the fund gains its cut and pays
    # the top-up and the cover; the pool keeps the rest (or pays what the fund could not)
    insurance_delta: int256 = convert(cut, int256) - convert(from_insurance + cover, int256)
    pool_delta: int256 = convert(pos.collateral, int256) - convert(fee, int256) - insurance_delta
    self._settle(empty(address), 0, pool_delta, -convert(pos.collateral, int256), insurance_delta, fee_receiver, fee, reserved_delta, True)
    return True


@internal
def _cover(key: bytes32, market: uint256, shortfall: uint256, fund: uint256) -> uint256:
    """
    @dev The bad-debt waterfall: the insurance fund (`fund` available, token units) pays a
         shortfall first, the LPs (the pool) the rest. Returns what the fund pays.
    """
    if shortfall == 0:
        return 0
    cover: uint256 = min(shortfall, fund)
    self.bad_debt_total += shortfall - cover
    log BadDebt(key=key, market=market, shortfall=shortfall, from_insurance=cover, from_lps=shortfall - cover)
    return cover


@internal
@view
def _cap_profit(market: uint256, is_long: bool, pnl: int256, price: uint256) -> int256:
    """
    @dev While the side's net unrealised profit exceeds max_pnl_factor_for_traders of the
         pool amount (cap), a realised profit is scaled by cap / side profit (rounded down);
         and no single close realises more than the cap itself (a winner whose side nets
         less, because others on it are losing, cannot claim more than the pool can pay).
         The pool amount is the one `_accrue` just recorded.
    """
    oi: uint256 = self._oi[market * 2 + convert(is_long, uint256)]
    side_pnl: int256 = math.pnl_usd(oi & MASK_128, oi >> HALF, price, is_long)
    cap: uint256 = math.bps_of((self._clock[market] >> POOL_OFFSET) * token_scale, self._a(market, A_TRADERS_CAP, BITS_BPS), False)
    profit: uint256 = convert(pnl, uint256)
    if side_pnl > convert(cap, int256):
        profit = math.mul_div(profit, cap, convert(side_pnl, uint256), False)
    return convert(min(profit, cap // token_scale), int256)


@internal
@view
def _close_price(market: uint256, is_long: bool, fresh: bool) -> uint256:
    """
    @dev The price a position closes at: a settled market's settlement price; otherwise
         the fresh keeper price (longs at the min, shorts at the max) where risk is added
         or a keeper acts, or the exit price (which may fall back to the reference feed).
    """
    if self._a(market, A_STATUS, STATUS_BITS) == SETTLED:
        return self.settlement_price[market]
    if fresh:
        return staticcall oracle.get_price(market, not is_long)
    return staticcall oracle.get_exit_price(market, not is_long)


@internal
@pure
def _insurance_cut(config_a: uint256, amount: uint256) -> uint256:
    # the insurance fund's cut, rounded down (the pool keeps the dust); config_a: the
    # market's settings word, which the caller has read
    return math.bps_of(amount, (config_a >> A_INSURANCE_CUT) & MASK_BPS, False)


# ---------------------------------------------------------------- internals: money


@internal
def _settle(
    account_in: address,
    amount_in: uint256,
    pool_delta: int256,
    collateral_delta: int256,
    insurance_delta: int256,
    account_out: address,
    amount_out: uint256,
    reserved_delta: int256,
    credit: bool,
):
    # `credit`: `amount_out` is owed to `account_out`, claimable from the Vault later
    # (a keeper's fee, an order's payout: no token transfer to it, no control handed to
    # it). No `account_in` with an `amount_in`: it comes from the order book's escrow.
    s: settlement.Settlement = settlement.Settlement(
        account_in=account_in,
        amount_in=amount_in,
        pool_delta=pool_delta,
        collateral_delta=collateral_delta,
        escrow_delta=0,
        insurance_delta=insurance_delta,
        account_out=account_out,
        amount_out=amount_out,
        reserved_delta=reserved_delta,
        credit_account=empty(address),
        credit_amount=0,
    )
    if account_in == empty(address):
        s.escrow_delta = -convert(amount_in, int256)
        s.amount_in = 0
    if credit:
        s.credit_account = account_out
        s.credit_amount = amount_out
        s.account_out = empty(address)
        s.amount_out = 0
    extcall vault.settle(s)


# ---------------------------------------------------------------- internals: config


@internal
@view
def _a(market: uint256, offset: uint256, bits: uint256) -> uint256:
    return (self._config_a[market] >> offset) & ((1 << bits) - 1)


@internal
@view
def _b(market: uint256, offset: uint256, bits: uint256) -> uint256:
    return (self._config_b[market] >> offset) & ((1 << bits) - 1)


@internal
@pure
def _tier_floor(threshold: uint256) -> uint256:
    # the highest set bit of the first tier's threshold (micro-dollars), NO_TIERS for none
    if threshold == 0:
        return NO_TIERS
    bit: uint256 = 0
    for i: uint256 in range(1, MAX_THRESHOLD_BIT):
        if threshold >> i == 0:
            break
        bit = i
    return bit


@internal
@pure
def _refuse(code: uint256, must: bool) -> uint256:
    # a refusal of a trade (REFUSED_*): reverted with its reason when the caller must succeed,
    # else returned
    if must:
        raise self._reason(code)
    return code


@internal
@pure
def _reason(code: uint256) -> String[40]:
    # the named reason of a refusal code; the OrderBook's `reason` holds the same table
    if code == REFUSED_UNKNOWN_MARKET:
        return "perp: unknown market"
    if code == REFUSED_NOTHING_TO_DO:
        return "perp: nothing to do"
    if code == REFUSED_PAUSED:
        return "perp: paused"
    if code == REFUSED_MARKET_CLOSING:
        return "perp: market closing"
    if code == REFUSED_ZERO_SIZE:
        return "perp: zero size"
    if code == REFUSED_ZERO_COLLATERAL:
        return "perp: zero collateral"
    if code == REFUSED_PRICE_NOT_ACCEPTABLE:
        return "perp: price not acceptable"
    if code == REFUSED_FEES_EXCEED_COLLATERAL:
        return "perp: fees exceed collateral"
    if code == REFUSED_NO_POSITION:
        return "perp: no position"
    if code == REFUSED_INSUFFICIENT_COLLATERAL:
        return "perp: insufficient collateral"
    if code == REFUSED_MAX_OPEN_INTEREST:
        return "perp: max open interest"
    if code == REFUSED_RESERVE_EXCEEDED:
        return "perp: reserve exceeded"
    if code == REFUSED_POSITION_TOO_SMALL:
        return "perp: position too small"
    if code == REFUSED_COLLATERAL_BELOW_MIN:
        return "perp: collateral below min"
    if code == REFUSED_LEVERAGE_TOO_HIGH:
        return "perp: leverage too high"
    return "perp: would be liquidatable"


@internal
@pure
def _fail(reason: String[40]):
    # one copy of the revert code for every named reason (an inline assert costs ~50
    # bytes more per site, which this contract cannot afford under EIP-170)
    raise reason


@internal
@view
def _only_configurator():
    if msg.sender != configurator:
        self._fail("perp: not configurator")
