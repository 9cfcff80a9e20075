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
@custom:kill `set_paused(True)` stops opening and increasing; closing stays available.
"""

from contracts.interfaces import IOracle
from contracts.lib import math  # stateless helpers: no `initializes` needed

# ---------------------------------------------------------------- interfaces

struct Settlement:
    account_in: address
    amount_in: uint256
    pool_delta: int256
    collateral_delta: int256
    escrow_delta: int256
    insurance_delta: int256
    account_out: address
    amount_out: uint256
    reserved_delta: int256

interface IVault:
    def settle(s: Settlement): nonpayable
    def pool_amount() -> uint256: view
    def reserved_amount() -> uint256: view
    def token_scale() -> uint256: view

# ---------------------------------------------------------------- constants

WAD: constant(uint256) = 10**18
BPS: constant(uint256) = 10_000
MAX_MARKETS: constant(uint256) = 16
SECONDS_PER_HOUR: constant(uint256) = 3_600
SECONDS_PER_YEAR: constant(uint256) = 31_536_000  # 365 days

# hard bounds on market settings
MIN_LEVERAGE_BPS: constant(uint256) = 10_000  # 1x
MAX_LEVERAGE_BPS: constant(uint256) = 1_000_000  # 100x
MAX_POSITION_FEE_BPS: constant(uint256) = 100  # 1 %
MIN_MIN_COLLATERAL_USD: constant(uint256) = 10**18  # $1
MAX_MIN_COLLATERAL_USD: constant(uint256) = 10_000 * 10**18  # $10,000
MAX_RESERVE_FACTOR_BPS: constant(uint256) = 20_000  # reserve up to 2x the open interest
MIN_RESERVE_FACTOR_BPS: constant(uint256) = 1_000
MAX_BORROWING_FACTOR: constant(uint256) = 10**18 // 3_600 // 100  # 1 %/h at 100 % use
MAX_FUNDING_FACTOR: constant(uint256) = 10**18 // 3_600 // 100  # 1 %/h at full skew
MAX_FUNDING_RATE: constant(uint256) = 10**18 // 3_600 // 100  # 1 %/h
MIN_MAINTENANCE_BPS: constant(uint256) = 10  # 0.1 %
MAX_MAINTENANCE_BPS: constant(uint256) = 5_000  # 50 %
MAX_PNL_FACTOR_BPS: constant(uint256) = 10_000  # trader profit at most the pool amount

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

# packed market config, two slots (Vyper never packs; every trade reads both)
#   _config_a = max_leverage_bps (24) | position_fee_bps (16) | reserve_factor_bps (16)
#               | maintenance_margin_bps (16) | min_collateral_usd (88) | min_maintenance_usd (88)
#   _config_b = max_open_interest_usd (112) | borrowing_factor (48) | funding_factor (48)
#               | max_funding_rate (48)
A_LEVERAGE: constant(uint256) = 0
A_FEE: constant(uint256) = 24
A_RESERVE: constant(uint256) = 40
A_MAINTENANCE: constant(uint256) = 56
A_MIN_COLLATERAL: constant(uint256) = 72
A_MIN_MAINTENANCE: constant(uint256) = 160
B_MAX_OI: constant(uint256) = 0
B_BORROWING: constant(uint256) = 112
B_FUNDING: constant(uint256) = 160
B_MAX_FUNDING: constant(uint256) = 208
BITS_BPS: constant(uint256) = 16
BITS_LEVERAGE: constant(uint256) = 24
BITS_USD: constant(uint256) = 88
BITS_OI: constant(uint256) = 112
BITS_RATE: constant(uint256) = 48

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

# ---------------------------------------------------------------- structs

struct MarketConfig:
    max_leverage_bps: uint256  # 10_000 = 1x
    position_fee_bps: uint256  # on every size change
    min_collateral_usd: uint256  # WAD, after fees
    max_open_interest_usd: uint256  # WAD, per side
    reserve_factor_bps: uint256  # reserved = open interest x this
    borrowing_factor: uint256  # WAD per second at 100 % utilisation
    funding_factor: uint256  # WAD per second at full skew
    max_funding_rate: uint256  # WAD per second
    maintenance_margin_bps: uint256  # of size
    min_maintenance_usd: uint256  # WAD floor of the maintenance margin

struct Position:
    size_usd: uint256
    size_tokens: uint256
    collateral: uint256  # token units
    borrow_index: uint256  # snapshot at last touch
    funding_index: int256  # snapshot at last touch

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
    maintenance_margin: uint256  # WAD USD
    leverage_bps: uint256  # size / collateral, 10_000 = 1x
    liquidation_price: uint256  # WAD, 0 when none exists
    is_liquidatable: bool

struct MarketState:
    last_update: uint256
    borrow_index: uint256
    funding_index_long: int256
    funding_index_short: int256
    open_interest_long_usd: uint256
    open_interest_short_usd: uint256
    open_interest_long_tokens: uint256
    open_interest_short_tokens: uint256
    reserved_usd: uint256
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

# ---------------------------------------------------------------- storage

admin: public(address)
pending_admin: public(address)
paused: public(bool)
max_pnl_factor_bps: public(uint256)  # cap on net trader profit counted in pool value

markets: public(DynArray[uint256, MAX_MARKETS])
_config_a: HashMap[uint256, uint256]  # packed: leverage, fee, reserve, maintenance, min USD values
_config_b: HashMap[uint256, uint256]  # packed: max open interest, rate factors


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

event MarketAdded:
    market: indexed(uint256)

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

event PausedSet:
    paused: bool

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
    @param oracle_ The perpool Oracle.
    @param vault_ The perpool Vault; Perp must be made its controller and pool value source.
    """
    oracle = IOracle(oracle_)
    vault = IVault(vault_)
    token_scale = staticcall IVault(vault_).token_scale()
    self.admin = msg.sender
    self.max_pnl_factor_bps = 9_000
    log AdminTransferred(previous_admin=empty(address), admin=msg.sender)
    log MaxPnlFactorSet(max_pnl_factor_bps=9_000)


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
    @param collateral_delta Token units pulled from the caller (approve the Vault first).
    @param size_delta WAD USD added to the size.
    @param acceptable_price Worst fill accepted: longs revert above it, shorts below it.
            Ignored when only collateral is added.
    """
    assert self._config_a[market] != 0, "perp: unknown market"
    assert collateral_delta != 0 or size_delta != 0, "perp: nothing to do"
    key: bytes32 = self._key(msg.sender, market, is_long)
    pos: Position = self._load(key)
    if size_delta != 0:
        assert not self.paused, "perp: paused"
    if pos.size_usd == 0:
        assert size_delta != 0, "perp: zero size"
        assert collateral_delta != 0, "perp: zero collateral"

    price: uint256 = 0
    if size_delta != 0:
        price = staticcall oracle.get_price(market, is_long)
        if is_long:
            assert price <= acceptable_price, "perp: price not acceptable"
        else:
            assert price >= acceptable_price, "perp: price not acceptable"
    else:
        # adding collateral only reduces risk: it may use the fallback price
        price = staticcall oracle.get_exit_price(market, not is_long)

    idx: Indices = self._accrue(market)
    s: Settle = self._pending(pos, is_long, idx)
    s.position_fee = self._to_tokens(math.bps_of(size_delta, self._a(market, A_FEE, BITS_BPS), True), True)

    gross: uint256 = pos.collateral + collateral_delta + s.funding_received
    owed: uint256 = s.borrow_fee + s.position_fee + s.funding_paid
    assert gross >= owed, "perp: fees exceed collateral"

    new: Position = Position(
        size_usd=pos.size_usd + size_delta,
        size_tokens=pos.size_tokens + self._tokens_for(size_delta, price, is_long),
        collateral=gross - owed,
        borrow_index=idx.borrow,
        funding_index=idx.funding_long if is_long else idx.funding_short,
    )
    reserved_delta: int256 = self._write_position(key, market, is_long, pos, new)
    if size_delta != 0:
        self._check_caps(market, is_long, reserved_delta)
        self._check_position(new, market, is_long, price, idx)
    # adding collateral alone only reduces risk: allowed even to an unhealthy position
    log PositionUpdate(
        key=key,
        account=msg.sender,
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
    # takes the fees and funding paid and fronts funding received
    fees_to_pool: int256 = convert(owed, int256) - convert(s.funding_received, int256)
    self._settle(msg.sender, collateral_delta, fees_to_pool, convert(collateral_delta, int256) - fees_to_pool, empty(address), 0, reserved_delta)


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
            oracle price: longs close at the min price, shorts at the max. PnL is realised
            pro rata; profit is paid out with `collateral_delta`, losses and fees come out
            of collateral. Closing the whole size pays out everything left (collateral_delta
            is then ignored); a loss beyond the collateral is bad debt absorbed by the pool.
    @param collateral_delta Token units of collateral to withdraw (partial decreases).
    @param size_delta WAD USD to close; the whole size closes the position.
    @param acceptable_price Worst fill accepted: longs revert below it, shorts above it.
    @param receiver Who gets the tokens paid out.
    @return Token units paid to `receiver`.
    """
    assert self._config_a[market] != 0, "perp: unknown market"
    assert receiver != empty(address), "perp: zero receiver"
    assert collateral_delta != 0 or size_delta != 0, "perp: nothing to do"
    key: bytes32 = self._key(msg.sender, market, is_long)
    pos: Position = self._load(key)
    assert pos.size_usd != 0, "perp: no position"
    assert size_delta <= pos.size_usd, "perp: size exceeds position"
    closing: bool = size_delta == pos.size_usd

    price: uint256 = 0
    if collateral_delta != 0 and not closing:
        # withdrawing collateral adds risk: it needs a fresh keeper price
        price = staticcall oracle.get_price(market, not is_long)
    else:
        price = staticcall oracle.get_exit_price(market, not is_long)
    if size_delta != 0:
        if is_long:
            assert price >= acceptable_price, "perp: price not acceptable"
        else:
            assert price <= acceptable_price, "perp: price not acceptable"

    idx: Indices = self._accrue(market)
    s: Settle = self._pending(pos, is_long, idx)
    s.position_fee = self._to_tokens(math.bps_of(size_delta, self._a(market, A_FEE, BITS_BPS), True), True)
    tokens_closed: uint256 = pos.size_tokens
    if not closing:
        # long: fewer tokens closed (less profit now); short: more (less profit now)
        tokens_closed = math.mul_div(pos.size_tokens, size_delta, pos.size_usd, not is_long)
    s.pnl = self._pnl_tokens(size_delta, tokens_closed, price, is_long)

    # everything owed to (+) or by (-) the position, token units
    settle: int256 = s.pnl + convert(s.funding_received, int256) - convert(s.borrow_fee + s.position_fee + s.funding_paid, int256)
    collateral: int256 = convert(pos.collateral, int256)
    amount_out: uint256 = 0
    bad_debt: uint256 = 0
    new: Position = empty(Position)
    if closing:
        left: int256 = collateral + settle
        if left > 0:
            amount_out = convert(left, uint256)
        else:
            bad_debt = convert(-left, uint256)
    else:
        assert collateral_delta <= pos.collateral, "perp: insufficient collateral"
        remaining: int256 = collateral - convert(collateral_delta, int256)
        if settle >= 0:
            amount_out = collateral_delta + convert(settle, uint256)
        else:
            remaining += settle
            assert remaining >= 0, "perp: insufficient collateral"
            amount_out = collateral_delta
        new = Position(
            size_usd=pos.size_usd - size_delta,
            size_tokens=pos.size_tokens - tokens_closed,
            collateral=convert(remaining, uint256),
            borrow_index=idx.borrow,
            funding_index=idx.funding_long if is_long else idx.funding_short,
        )

    reserved_delta: int256 = self._write_position(key, market, is_long, pos, new)
    if not closing:
        self._check_position(new, market, is_long, price, idx)

    log PositionUpdate(
        key=key,
        account=msg.sender,
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
        bad_debt=bad_debt,
    )
    # the collateral bucket gives up the position's change in collateral; the pool
    # pays what goes out beyond that (or keeps what the position lost)
    collateral_change: int256 = convert(new.collateral, int256) - collateral
    pool_change: int256 = -convert(amount_out, int256) - collateral_change
    self._settle(empty(address), 0, pool_change, collateral_change, receiver, amount_out, reserved_delta)
    return amount_out


# ---------------------------------------------------------------- views


@view
@external
def pool_value(maximize: bool) -> uint256:
    """
    @notice The pool's value in WAD USD: pool amount + pending borrowing fees - pending
            funding owed to traders - net unrealised trader PnL, with trader profit capped
            at `max_pnl_factor_bps` of the pool amount. `maximize` prices PnL with the
            price that makes the pool worth more (longs at min, shorts at max). Reverts on
            a stale price in any market with open interest.
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
            # longs valued at the min price when maximizing the pool, shorts at the max
            p: uint256 = staticcall oracle.get_price(market, is_long != maximize)
            trader_pnl += self._pnl_wad(usd, oi >> HALF, p, is_long)
    cap: int256 = convert(math.bps_of(pool, self.max_pnl_factor_bps, False), int256)
    trader_pnl = min(trader_pnl, cap)
    value: int256 = convert(assets, int256) - trader_pnl
    if value < 0:
        return 0
    return convert(value, uint256)


@view
@external
def configs(market: uint256) -> MarketConfig:
    """
    @notice A market's settings (all zero for an unknown market).
    """
    return MarketConfig(
        max_leverage_bps=self._a(market, A_LEVERAGE, BITS_LEVERAGE),
        position_fee_bps=self._a(market, A_FEE, BITS_BPS),
        min_collateral_usd=self._a(market, A_MIN_COLLATERAL, BITS_USD),
        max_open_interest_usd=self._b(market, B_MAX_OI, BITS_OI),
        reserve_factor_bps=self._a(market, A_RESERVE, BITS_BPS),
        borrowing_factor=self._b(market, B_BORROWING, BITS_RATE),
        funding_factor=self._b(market, B_FUNDING, BITS_RATE),
        max_funding_rate=self._b(market, B_MAX_FUNDING, BITS_RATE),
        maintenance_margin_bps=self._a(market, A_MAINTENANCE, BITS_BPS),
        min_maintenance_usd=self._a(market, A_MIN_MAINTENANCE, BITS_USD),
    )


@view
@external
def total_reserved_usd() -> uint256:
    """
    @notice Σ over markets of open interest × reserve factor, WAD USD (each rounded up). The
            Vault's `reserved_amount` is the same in token units, each market rounded up.
    """
    total: uint256 = 0
    for market: uint256 in self.markets:
        total += self._reserved_usd(market)
    return total


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
def get_position(account: address, market: uint256, is_long: bool) -> Position:
    """
    @notice The stored position (all zero when none).
    """
    return self._load(self._key(account, market, is_long))


@view
@external
def position_info(account: address, market: uint256, is_long: bool) -> PositionInfo:
    """
    @notice Everything a trader needs: PnL, pending fees, leverage and liquidation price,
            valued at the close price (longs at the min price, shorts at the max).
    """
    pos: Position = self._load(self._key(account, market, is_long))
    if pos.size_usd == 0:
        return empty(PositionInfo)
    price: uint256 = staticcall oracle.get_exit_price(market, not is_long)
    idx: Indices = self._indices_now(market)
    remaining: int256 = 0
    maintenance: uint256 = 0
    remaining, maintenance = self._health(pos, market, is_long, price, idx)
    s: Settle = self._pending(pos, is_long, idx)
    funding: int256 = self._funding_wad(pos, is_long, idx)
    borrow: uint256 = math.mul_div(pos.size_usd, idx.borrow - pos.borrow_index, WAD, True)
    close_fee: uint256 = math.bps_of(pos.size_usd, self._a(market, A_FEE, BITS_BPS), True)
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
        pnl=self._pnl_wad(pos.size_usd, pos.size_tokens, price, is_long),
        pending_borrowing_fee=borrow,
        pending_funding=funding,
        close_fee=close_fee,
        remaining_collateral=remaining,
        maintenance_margin=maintenance,
        leverage_bps=leverage,
        liquidation_price=self._liquidation_price(pos, is_long, collateral_wad, borrow, funding, close_fee, maintenance),
        is_liquidatable=remaining < convert(maintenance, int256),
    )


@view
@external
def market_state(market: uint256) -> MarketState:
    """
    @notice A market's stored indices and aggregates (indices as of `last_update`).
    """
    idx: Indices = self._stored_indices(market)
    return MarketState(
        last_update=self._clock[market] & MASK_TIME,
        borrow_index=idx.borrow,
        funding_index_long=idx.funding_long,
        funding_index_short=idx.funding_short,
        open_interest_long_usd=self._oi[market * 2 + 1] & MASK_128,
        open_interest_short_usd=self._oi[market * 2] & MASK_128,
        open_interest_long_tokens=self._oi[market * 2 + 1] >> HALF,
        open_interest_short_tokens=self._oi[market * 2] >> HALF,
        reserved_usd=self._reserved_usd(market),
        utilisation_pool_amount=self._clock[market] >> POOL_OFFSET,
    )


@view
@external
def current_indices(market: uint256) -> Indices:
    """
    @notice A market's borrowing and funding indices accrued to now.
    """
    return self._indices_now(market)


@view
@external
def rates(market: uint256) -> Rates:
    """
    @notice A market's current borrowing and funding rates, per second, hour and year
            (WAD: 1e18 = 100 %). Funding is signed per side: > 0 the side receives.
    """
    borrow: uint256 = self._borrowing_rate(market)
    f_long: int256 = 0
    f_short: int256 = 0
    f_long, f_short = self._funding_rates(market)
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
def open_interest(market: uint256, is_long: bool) -> (uint256, uint256):
    """
    @notice A side's open interest: (USD at entry, index tokens), both WAD.
    """
    oi: uint256 = self._oi[market * 2 + convert(is_long, uint256)]
    return oi & MASK_128, oi >> HALF


# ---------------------------------------------------------------- admin


@external
def add_market(market: uint256, config: MarketConfig):
    """
    @notice List a market registered in the Oracle, with its bounded settings.
    """
    self._only_admin()
    assert staticcall oracle.is_market(market), "perp: unknown oracle market"
    assert not self._config_a[market] != 0, "perp: market exists"
    self.markets.append(market)
    self._clock[market] = block.timestamp | (staticcall vault.pool_amount() << POOL_OFFSET)
    self._funding[market] = convert(WIDE_BIAS, uint256) | (convert(WIDE_BIAS, uint256) << HALF)
    # the funding sums are stored biased too
    self._sums[market * 2] = convert(WIDE_BIAS, uint256) << HALF
    self._sums[market * 2 + 1] = convert(WIDE_BIAS, uint256) << HALF
    log MarketAdded(market=market)
    self._set_config(market, config)


@external
def set_market_config(market: uint256, config: MarketConfig):
    """
    @notice Change a market's settings; fees accrue to now under the old ones first.
    """
    self._only_admin()
    assert self._config_a[market] != 0, "perp: unknown market"
    self._accrue(market)
    old_reserved: uint256 = self._reserved_tokens(market)
    self._set_config(market, config)
    # the reserve follows the new factor at once
    reserved_delta: int256 = convert(self._reserved_tokens(market), int256) - convert(old_reserved, int256)
    if reserved_delta != 0:
        self._settle(empty(address), 0, 0, 0, empty(address), 0, reserved_delta)


@external
def set_paused(paused: bool):
    """
    @notice Stop (or resume) opening and increasing positions. Closing, adding
            collateral and LP redemptions stay available.
    """
    self._only_admin()
    self.paused = paused
    log PausedSet(paused=paused)


@external
def set_max_pnl_factor(max_pnl_factor_bps: uint256):
    """
    @notice Cap on net trader profit counted in the pool value, in bps of the pool amount.
    """
    self._only_admin()
    assert max_pnl_factor_bps != 0 and max_pnl_factor_bps <= MAX_PNL_FACTOR_BPS, "perp: bad max pnl factor"
    self.max_pnl_factor_bps = max_pnl_factor_bps
    log MaxPnlFactorSet(max_pnl_factor_bps=max_pnl_factor_bps)


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
    assert msg.sender == self.pending_admin, "perp: not pending admin"
    log AdminTransferred(previous_admin=self.admin, admin=msg.sender)
    self.admin = msg.sender
    self.pending_admin = empty(address)


# ---------------------------------------------------------------- internals: positions


@internal
@pure
def _key(account: address, market: uint256, is_long: bool) -> bytes32:
    return keccak256(abi_encode(account, market, is_long))


@internal
@view
def _load(key: bytes32) -> Position:
    size: uint256 = self._pos_size[key]
    if size == 0:
        return empty(Position)
    state: uint256 = self._pos_state[key]
    return Position(
        size_usd=size & MASK_128,
        size_tokens=size >> HALF,
        collateral=state & MASK_COLLATERAL,
        borrow_index=(state >> BORROW_OFFSET) & MASK_INDEX,
        funding_index=convert((state >> FUNDING_OFFSET) & MASK_INDEX, int256) - FUNDING_BIAS,
    )


@internal
def _write_position(key: bytes32, market: uint256, is_long: bool, old: Position, new: Position) -> int256:
    """
    @dev The one place a position changes, and with it every aggregate that depends on
         positions: open interest (USD, tokens), Σ size × index snapshots. Returns the
         change of the market's reserve in token units, which the caller passes to the
         Vault in the same `settle`.
    """
    assert new.size_usd <= MASK_128 and new.size_tokens <= MASK_128, "perp: size too large"
    assert new.collateral <= MASK_COLLATERAL, "perp: collateral too large"
    # a position must hold some index tokens, or it has no entry price
    assert new.size_usd == 0 or new.size_tokens != 0, "perp: position too small"
    side: uint256 = market * 2 + convert(is_long, uint256)
    oi: uint256 = self._oi[side]
    usd: uint256 = (oi & MASK_128) + new.size_usd - old.size_usd
    tokens: uint256 = (oi >> HALF) + new.size_tokens - old.size_tokens
    assert usd <= MASK_128 and tokens <= MASK_128, "perp: aggregate overflow"
    self._oi[side] = usd | (tokens << HALF)
    # the sums round down on both sides; pool_value's pending terms are estimates
    sums: uint256 = self._sums[side]
    borrow_sum: uint256 = (
        (sums & MASK_128)
        + math.mul_div(new.size_usd, new.borrow_index, WAD, False)
        - math.mul_div(old.size_usd, old.borrow_index, WAD, False)
    )
    funding_sum: int256 = (
        convert(sums >> HALF, int256)
        + self._signed_mul_wad(new.size_usd, new.funding_index)
        - self._signed_mul_wad(old.size_usd, old.funding_index)
    )
    assert borrow_sum <= MASK_128 and funding_sum >= 0 and funding_sum <= convert(MASK_128, int256), "perp: aggregate overflow"
    self._sums[side] = borrow_sum | (convert(funding_sum, uint256) << HALF)
    reserved_delta: int256 = 0
    if new.size_usd != old.size_usd:
        # the market's reserve in tokens before and after
        other: uint256 = self._oi[side ^ 1] & MASK_128
        before: uint256 = self._reserve_tokens(market, (oi & MASK_128) + other)
        reserved_delta = convert(self._reserve_tokens(market, usd + other), int256) - convert(before, int256)

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
def _check_caps(market: uint256, is_long: bool, reserved_delta: int256):
    side: uint256 = market * 2 + convert(is_long, uint256)
    assert self._oi[side] & MASK_128 <= self._b(market, B_MAX_OI, BITS_OI), "perp: max open interest"
    # the Vault's reserve after this trade, against the pool amount
    reserved: int256 = convert(staticcall vault.reserved_amount(), int256) + reserved_delta
    assert reserved <= convert(staticcall vault.pool_amount(), int256), "perp: reserve exceeded"


@internal
@view
def _check_position(pos: Position, market: uint256, is_long: bool, price: uint256, idx: Indices):
    collateral_wad: uint256 = pos.collateral * token_scale
    assert collateral_wad >= self._a(market, A_MIN_COLLATERAL, BITS_USD), "perp: collateral below min"
    assert pos.size_usd * BPS <= self._a(market, A_LEVERAGE, BITS_LEVERAGE) * collateral_wad, "perp: leverage too high"
    remaining: int256 = 0
    maintenance: uint256 = 0
    remaining, maintenance = self._health(pos, market, is_long, price, idx)
    assert remaining >= convert(maintenance, int256), "perp: would be liquidatable"


@internal
@view
def _health(pos: Position, market: uint256, is_long: bool, price: uint256, idx: Indices) -> (int256, uint256):
    """
    @dev The one health function: remaining = collateral + PnL - pending borrowing
         - pending funding paid (+ received) - close fee, against the maintenance margin
         max(size x maintenance_margin_bps, min_maintenance_usd). A position is
         liquidatable when remaining < maintenance. Costs round up, gains down.
    """
    close_fee: uint256 = math.bps_of(pos.size_usd, self._a(market, A_FEE, BITS_BPS), True)
    borrow: uint256 = math.mul_div(pos.size_usd, idx.borrow - pos.borrow_index, WAD, True)
    remaining: int256 = (
        convert(pos.collateral * token_scale, int256)
        + self._pnl_wad(pos.size_usd, pos.size_tokens, price, is_long)
        + self._funding_wad(pos, is_long, idx)
        - convert(borrow + close_fee, int256)
    )
    maintenance: uint256 = max(
        math.bps_of(pos.size_usd, self._a(market, A_MAINTENANCE, BITS_BPS), True),
        self._a(market, A_MIN_MAINTENANCE, BITS_USD),
    )
    return remaining, maintenance


@internal
@view
def _liquidation_price(
    pos: Position,
    is_long: bool,
    collateral_wad: uint256,
    borrow: uint256,
    funding: int256,
    close_fee: uint256,
    maintenance: uint256,
) -> uint256:
    # remaining(p) = maintenance is linear in p; solve it. Long: p rounds up, short: down.
    fixed: int256 = convert(collateral_wad, int256) + funding - convert(borrow + close_fee + maintenance, int256)
    if is_long:
        numerator: int256 = convert(pos.size_usd, int256) - fixed
        if numerator <= 0:
            return 0
        return math.mul_div(convert(numerator, uint256), WAD, pos.size_tokens, True)
    numerator: int256 = convert(pos.size_usd, int256) + fixed
    if numerator <= 0:
        return 0
    return math.mul_div(convert(numerator, uint256), WAD, pos.size_tokens, False)


@internal
@pure
def _pnl_wad(size_usd: uint256, size_tokens: uint256, price: uint256, is_long: bool) -> int256:
    # value of the tokens rounds down for longs, up for shorts: PnL never rounds up
    if is_long:
        return convert(math.mul_div(size_tokens, price, WAD, False), int256) - convert(size_usd, int256)
    return convert(size_usd, int256) - convert(math.mul_div(size_tokens, price, WAD, True), int256)


@internal
@view
def _pnl_tokens(size_usd: uint256, size_tokens: uint256, price: uint256, is_long: bool) -> int256:
    pnl: int256 = self._pnl_wad(size_usd, size_tokens, price, is_long)
    if pnl >= 0:
        return convert(self._to_tokens(convert(pnl, uint256), False), int256)  # profit rounds down
    return -convert(self._to_tokens(convert(-pnl, uint256), True), int256)  # loss rounds up


@internal
@pure
def _tokens_for(size_usd: uint256, price: uint256, is_long: bool) -> uint256:
    # longs get fewer tokens (rounded down), shorts owe more (rounded up)
    return math.mul_div(size_usd, WAD, price, not is_long)


@internal
@view
def _to_tokens(wad: uint256, round_up: bool) -> uint256:
    return math.mul_div(wad, 1, token_scale, round_up)


@internal
@view
def _pending(pos: Position, is_long: bool, idx: Indices) -> Settle:
    """
    @dev Borrowing and funding accrued on `pos` since its last touch, in token units:
         borrowing and funding paid round up, funding received rounds down.
    """
    s: Settle = empty(Settle)
    if pos.size_usd == 0:
        return s
    s.borrow_fee = self._to_tokens(math.mul_div(pos.size_usd, idx.borrow - pos.borrow_index, WAD, True), True)
    funding: int256 = self._funding_wad(pos, is_long, idx)
    if funding >= 0:
        s.funding_received = self._to_tokens(convert(funding, uint256), False)
    else:
        s.funding_paid = self._to_tokens(convert(-funding, uint256), True)
    return s


@internal
@pure
def _funding_wad(pos: Position, is_long: bool, idx: Indices) -> int256:
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
    return self._reserve_tokens(market, self._open_interest_usd(market))


@internal
@view
def _reserve_tokens(market: uint256, open_interest_usd: uint256) -> uint256:
    # the market's share of the Vault's reserved amount: its reserve in tokens, rounded up
    return self._to_tokens(math.bps_of(open_interest_usd, self._a(market, A_RESERVE, BITS_BPS), True), True)


@internal
@view
def _reserved_usd(market: uint256) -> uint256:
    # open interest of both sides × reserve factor, rounded up
    return math.bps_of(self._open_interest_usd(market), self._a(market, A_RESERVE, BITS_BPS), True)


@internal
@view
def _open_interest_usd(market: uint256) -> uint256:
    # both sides, WAD USD at entry
    return (self._oi[market * 2] & MASK_128) + (self._oi[market * 2 + 1] & MASK_128)


# ---------------------------------------------------------------- internals: rates


@internal
@view
def _borrowing_rate(market: uint256) -> uint256:
    """
    @dev borrowing_factor x utilisation, utilisation = reserved / pool amount (capped at
         100 %), WAD per second, rounded up. The pool amount is the one recorded at the
         market's last accrual: each interval is charged at the rate in force when it began,
         so an LP deposit just before a touch cannot cut fees already accrued. The recorded
         amount, not the PnL-adjusted value, so price swings do not move the rate.
    """
    pool: uint256 = (self._clock[market] >> POOL_OFFSET) * token_scale
    reserved: uint256 = self._reserved_usd(market)
    if reserved == 0:
        return 0
    utilisation: uint256 = WAD
    if pool != 0:
        utilisation = min(math.mul_div(reserved, WAD, pool, True), WAD)
    return math.mul_div(self._b(market, B_BORROWING, BITS_RATE), utilisation, WAD, True)


@internal
@view
def _funding_rates(market: uint256) -> (int256, int256):
    """
    @dev The heavier side pays funding_factor x |long - short| / (long + short), capped at
         max_funding_rate, per USD of its size per second (rounded up); the lighter side
         receives what was paid, spread over its smaller size (rounded down), but at most
         MAX_RECEIVE_MULTIPLE x the pay rate: a dust position cannot collect a whole side's
         funding, and what it cannot take stays in the pool, whose LPs carry the skew.
         Nothing accrues while either side is empty. Returns (long, short), > 0 = receives.
    """
    oi_long: uint256 = self._oi[market * 2 + 1] & MASK_128
    oi_short: uint256 = self._oi[market * 2] & MASK_128
    if oi_long == 0 or oi_short == 0 or oi_long == oi_short:
        return 0, 0
    skew: uint256 = math.abs_diff(oi_long, oi_short)
    pay: uint256 = min(
        math.mul_div(self._b(market, B_FUNDING, BITS_RATE), skew, oi_long + oi_short, True),
        self._b(market, B_MAX_FUNDING, BITS_RATE),
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
    idx: Indices = self._stored_indices(market)
    dt: uint256 = block.timestamp - (self._clock[market] & MASK_TIME)
    if dt == 0:
        return idx
    idx.borrow += self._borrowing_rate(market) * dt
    f_long: int256 = 0
    f_short: int256 = 0
    f_long, f_short = self._funding_rates(market)
    if f_long != 0:
        # the receiving side's increment is derived from the payer's, so Σ received <= Σ paid
        oi_long: uint256 = self._oi[market * 2 + 1] & MASK_128
        oi_short: uint256 = self._oi[market * 2] & MASK_128
        paid: uint256 = 0
        if f_long < 0:
            paid = convert(-f_long, uint256) * dt
            idx.funding_long -= convert(paid, int256)
            idx.funding_short += convert(self._received(paid, oi_long, oi_short), int256)
        else:
            paid = convert(-f_short, uint256) * dt
            idx.funding_short -= convert(paid, int256)
            idx.funding_long += convert(self._received(paid, oi_short, oi_long), int256)
    assert idx.borrow <= MAX_BORROW_INDEX, "perp: index overflow"
    assert idx.funding_long <= MAX_ABS_FUNDING_INDEX and idx.funding_long >= -MAX_ABS_FUNDING_INDEX, "perp: index overflow"
    assert idx.funding_short <= MAX_ABS_FUNDING_INDEX and idx.funding_short >= -MAX_ABS_FUNDING_INDEX, "perp: index overflow"
    return idx


@internal
@view
def _stored_indices(market: uint256) -> Indices:
    funding: uint256 = self._funding[market]
    return Indices(
        borrow=(self._clock[market] >> TIME_BITS) & MASK_INDEX,
        funding_long=convert(funding & MASK_128, int256) - WIDE_BIAS,
        funding_short=convert(funding >> HALF, int256) - WIDE_BIAS,
    )


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


# ---------------------------------------------------------------- internals: money


@internal
def _settle(
    account_in: address,
    amount_in: uint256,
    pool_delta: int256,
    collateral_delta: int256,
    account_out: address,
    amount_out: uint256,
    reserved_delta: int256,
):
    extcall vault.settle(
        Settlement(
            account_in=account_in,
            amount_in=amount_in,
            pool_delta=pool_delta,
            collateral_delta=collateral_delta,
            escrow_delta=0,
            insurance_delta=0,
            account_out=account_out,
            amount_out=amount_out,
            reserved_delta=reserved_delta,
        )
    )


# ---------------------------------------------------------------- internals: admin


@internal
@view
def _a(market: uint256, offset: uint256, bits: uint256) -> uint256:
    return (self._config_a[market] >> offset) & ((1 << bits) - 1)


@internal
@view
def _b(market: uint256, offset: uint256, bits: uint256) -> uint256:
    return (self._config_b[market] >> offset) & ((1 << bits) - 1)


@internal
def _only_admin():
    assert msg.sender == self.admin, "perp: not admin"


@internal
def _set_config(market: uint256, c: MarketConfig):
    assert c.max_leverage_bps >= MIN_LEVERAGE_BPS and c.max_leverage_bps <= MAX_LEVERAGE_BPS, "perp: bad max leverage"
    assert c.position_fee_bps <= MAX_POSITION_FEE_BPS, "perp: bad position fee"
    assert c.min_collateral_usd >= MIN_MIN_COLLATERAL_USD and c.min_collateral_usd <= MAX_MIN_COLLATERAL_USD, "perp: bad min collateral"
    assert c.max_open_interest_usd < 1 << BITS_OI, "perp: bad max open interest"
    assert c.reserve_factor_bps >= MIN_RESERVE_FACTOR_BPS and c.reserve_factor_bps <= MAX_RESERVE_FACTOR_BPS, "perp: bad reserve factor"
    assert c.borrowing_factor <= MAX_BORROWING_FACTOR, "perp: bad borrowing factor"
    assert c.funding_factor <= MAX_FUNDING_FACTOR, "perp: bad funding factor"
    assert c.max_funding_rate <= MAX_FUNDING_RATE, "perp: bad max funding rate"
    assert c.maintenance_margin_bps >= MIN_MAINTENANCE_BPS and c.maintenance_margin_bps <= MAX_MAINTENANCE_BPS, "perp: bad maintenance margin"
    # a position at max leverage must start healthy: its initial margin exceeds maintenance
    assert c.maintenance_margin_bps * c.max_leverage_bps < BPS * BPS, "perp: bad maintenance margin"
    assert c.min_maintenance_usd < c.min_collateral_usd, "perp: bad min maintenance"
    self._config_a[market] = (
        (c.max_leverage_bps << A_LEVERAGE)
        | (c.position_fee_bps << A_FEE)
        | (c.reserve_factor_bps << A_RESERVE)
        | (c.maintenance_margin_bps << A_MAINTENANCE)
        | (c.min_collateral_usd << A_MIN_COLLATERAL)
        | (c.min_maintenance_usd << A_MIN_MAINTENANCE)
    )
    self._config_b[market] = (
        (c.max_open_interest_usd << B_MAX_OI)
        | (c.borrowing_factor << B_BORROWING)
        | (c.funding_factor << B_FUNDING)
        | (c.max_funding_rate << B_MAX_FUNDING)
    )
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
