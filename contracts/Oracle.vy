# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title perpool Oracle
@notice Keeper-pushed prices, one per market, with the bounds that make a stolen keeper
        key or a known jump worth little:
        - a push is refused when its timestamp is not strictly newer than the stored one,
          is in the future beyond a small skew or already older than `max_price_age`;
        - a push may move a price at most `max_jump_bps` from the stored price, and at most
          `max_window_move_bps` from the price at the start of the current window; after
          the stored price went stale (a keeper outage) neither bound applies to the next
          push, which starts a new window and turns the spread on;
        - where a Chainlink-style reference feed is set, a push may deviate from it at most
          `max_deviation_bps`;
        - after an update that moved the price more than `spread_threshold_bps` within the
          window (or ended an outage), reads carry a `spread_bps` spread for
          `spread_duration` seconds from that block.
        Reads: `get_price` for anything that adds risk (reverts when stale);
        `get_exit_price` for risk-reducing actions, which falls back to the reference feed
        with a wide spread in the pool's favour when the keeper price is stale.
@dev Units: prices are WAD USD per one whole index token (1e18 = $1); times in seconds.
     Storage is hand-packed (Vyper never packs) so a push costs two cold slot reads and one
     write per market (two when a new window starts), and a read (`get_price`) two slots:
     the price word, which carries everything a read needs (price, observation time,
     spread end), and the config. Timestamps are stored in 32 bits (valid until the year
     2106) and prices in 96 bits (at most ~7.9e10 USD per token).
@custom:security A window that starts at t anchors at the last price before t, so a price
     moves at most `max_window_move_bps` from its window's anchor; across one window
     boundary the moves compound (1 + b)**2 - 1. Public networks set a reference feed on
     every market, which bounds every push, including the first after an outage.
@custom:kill Remove every updater (`set_updater(keeper, False)`): prices then go stale,
     risk-adding actions stop and risk-reducing ones fall back to the reference feeds.
"""

from contracts.interfaces import IAggregatorV3

interface ILeverageSource:
    def max_leverage_bps() -> uint256: view
from contracts.lib import math  # stateless helpers: no `initializes` needed

# ---------------------------------------------------------------- constants

BPS: constant(uint256) = 10_000
MAX_BATCH: constant(uint256) = 32  # markets per push
WAD_DECIMALS: constant(uint256) = 18
FEED_DECIMALS: constant(uint8) = 8  # what latest_round_data answers with
MAX_NAME: constant(uint256) = 16  # characters in a market name

# hard bounds on every setting
MIN_PRICE_AGE: constant(uint256) = 10  # s
MAX_PRICE_AGE: constant(uint256) = 86_400  # s = 1 day
MAX_FUTURE_SKEW: constant(uint256) = 300  # s = 5 min
MIN_WINDOW: constant(uint256) = 60  # s
MAX_WINDOW: constant(uint256) = 86_400  # s = 1 day
MAX_SPREAD_DURATION: constant(uint256) = 86_400  # s = 1 day
MAX_JUMP_BPS: constant(uint256) = 5_000  # 50 % in one push
MAX_WINDOW_MOVE_BPS: constant(uint256) = 9_000  # 90 % in one window
MAX_SPREAD_THRESHOLD_BPS: constant(uint256) = 5_000
MAX_SPREAD_BPS: constant(uint256) = 500  # 5 %
MAX_DEVIATION_BPS: constant(uint256) = 5_000  # 50 % from the reference
MAX_FALLBACK_SPREAD_BPS: constant(uint256) = 1_000  # 10 %
MAX_REFERENCE_AGE: constant(uint256) = 172_800  # s = 2 days (feed heartbeats vary)

# packed price slot: price (96) | window reference price (96) | observed_at (32)
# | spread_until (32): all a read needs. Only a registered market gets a price, and markets
# are never removed, so a nonzero price word also means "registered".
PRICE_BITS: constant(uint256) = 96
TIME_BITS: constant(uint256) = 32
REF_OFFSET: constant(uint256) = 96
OBSERVED_OFFSET: constant(uint256) = 192
SPREAD_UNTIL_OFFSET: constant(uint256) = 224
MAX_PRICE: constant(uint256) = 2**96 - 1  # WAD, ~7.9e10 USD per token

# packed market slot: registered | feed decimals | feed max age | window_start | feed
# (window_start is written only when a new window starts)
REGISTERED_BIT: constant(uint256) = 1
FEED_DECIMALS_OFFSET: constant(uint256) = 8
FEED_AGE_OFFSET: constant(uint256) = 16
WINDOW_START_OFFSET: constant(uint256) = 48
FEED_OFFSET: constant(uint256) = 96
WINDOW_START_CLEAR: constant(uint256) = ~((2**32 - 1) << 48)

# packed config slot offsets (32-bit times, then 16-bit bps values)
C_MAX_AGE: constant(uint256) = 0
C_SKEW: constant(uint256) = 32
C_WINDOW: constant(uint256) = 64
C_SPREAD_DURATION: constant(uint256) = 96
C_JUMP: constant(uint256) = 128
C_WINDOW_MOVE: constant(uint256) = 144
C_SPREAD_THRESHOLD: constant(uint256) = 160
C_SPREAD: constant(uint256) = 176
C_DEVIATION: constant(uint256) = 192
C_FALLBACK_SPREAD: constant(uint256) = 208
BPS_BITS: constant(uint256) = 16
MASK_TIME: constant(uint256) = 2**32 - 1
MASK_BPS: constant(uint256) = 2**16 - 1

# ---------------------------------------------------------------- structs

struct OracleConfig:
    max_price_age: uint256  # s: a price older than this is stale
    max_future_skew: uint256  # s: how far past block.timestamp an observation may be
    window: uint256  # s: length of the anchored window for the cumulative bound
    spread_duration: uint256  # s: how long the spread stays after a large move
    max_jump_bps: uint256  # largest move of one push, from the stored price
    max_window_move_bps: uint256  # largest move within one window, from its anchor
    spread_threshold_bps: uint256  # a move beyond this within a window turns the spread on
    spread_bps: uint256  # the spread then applied to min/max reads
    max_deviation_bps: uint256  # largest distance from the reference feed
    fallback_spread_bps: uint256  # spread on reference-feed prices used by exits

struct PriceData:
    price: uint256  # WAD, last pushed
    observed_at: uint256  # s, when the keeper observed its source
    window_ref_price: uint256  # WAD, anchor of the current window
    window_start: uint256  # s
    spread_until: uint256  # s, the spread applies while block.timestamp < this

struct ReferenceFeed:
    feed: address
    max_age: uint256  # s
    decimals: uint256

# ---------------------------------------------------------------- storage

admin: public(address)
pending_admin: public(address)
updaters: public(HashMap[address, bool])
market_count: public(uint256)  # markets are 1..market_count
market_names: public(HashMap[uint256, String[MAX_NAME]])

_config: uint256  # packed OracleConfig
# the Configurator: `max_jump_bps` x its highest max leverage may not exceed 100 % (empty:
# not linked yet, as during deployment)
leverage_source: public(address)
_prices: HashMap[uint256, uint256]  # market => packed price slot (read by every trade)
_markets: HashMap[uint256, uint256]  # market => packed market slot (pushes, admin, fallback)

# ---------------------------------------------------------------- events

event PriceUpdate:
    market: indexed(uint256)
    price: uint256
    observed_at: uint256
    spread_until: uint256

event MarketAdded:
    market: indexed(uint256)
    name: String[MAX_NAME]

event UpdaterSet:
    account: indexed(address)
    allowed: bool

event ConfigSet:
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

event ReferenceFeedSet:
    market: indexed(uint256)
    feed: address
    max_age: uint256
    decimals: uint256

event LeverageSourceSet:
    source: indexed(address)

event AdminTransferStarted:
    admin: indexed(address)
    pending_admin: indexed(address)

event AdminTransferred:
    previous_admin: indexed(address)
    admin: indexed(address)


@deploy
def __init__(config: OracleConfig):
    """
    @param config The initial bounds, checked like `set_config`.
    """
    self.admin = msg.sender
    log AdminTransferred(previous_admin=empty(address), admin=msg.sender)
    self._set_config(config)


# ---------------------------------------------------------------- keepers


@external
def set_prices(
    markets: DynArray[uint256, MAX_BATCH],
    prices: DynArray[uint256, MAX_BATCH],
    observed_at: uint256,
):
    """
    @notice Push one price per market, all observed at `observed_at`.
    @dev Only an authorised updater. Reverts for the whole batch on any bad item, so a
         keeper never half-applies an observation. The hot path: each item is checked
         inline (no internal calls, the config's fields decoded in place), and the reference
         feed is read only where one is set.
    @param markets Market ids, each registered.
    @param prices WAD USD per whole index token, each > 0.
    @param observed_at When the keeper observed its source (unix seconds).
    """
    assert self.updaters[msg.sender], "oracle: not updater"
    n: uint256 = len(markets)
    assert n == len(prices), "oracle: length mismatch"
    assert n > 0, "oracle: empty batch"
    cfg: uint256 = self._config
    assert observed_at <= block.timestamp + ((cfg >> C_SKEW) & MASK_TIME), "oracle: future timestamp"
    max_age: uint256 = (cfg >> C_MAX_AGE) & MASK_TIME
    assert observed_at + max_age >= block.timestamp, "oracle: stale timestamp"

    for i: uint256 in range(n, bound=MAX_BATCH):
        market: uint256 = markets[i]
        price: uint256 = prices[i]
        meta: uint256 = self._markets[market]
        assert meta & REGISTERED_BIT != 0, "oracle: unknown market"
        assert price != 0, "oracle: zero price"
        assert price <= MAX_PRICE, "oracle: price too large"

        slot: uint256 = self._prices[market]
        old: uint256 = slot & MAX_PRICE
        last: uint256 = (slot >> OBSERVED_OFFSET) & MASK_TIME
        assert observed_at > last, "oracle: timestamp not newer"

        # the first price, and the first after the stored one went stale, anchor a new window
        ref: uint256 = price
        start: uint256 = observed_at
        spread_on: bool = False
        if old != 0 and last + max_age < block.timestamp:
            # after a keeper outage the market may have moved past any per-push bound: the
            # reference feed (where set) bounds this push, and the spread marks the gap
            spread_on = True
        elif old != 0:
            # |price - old|, |price - ref|: each subtraction is of the smaller from the larger
            jump: uint256 = unsafe_sub(max(price, old), min(price, old)) * BPS
            assert jump <= ((cfg >> C_JUMP) & MASK_BPS) * old, "oracle: price jump"
            ref = (slot >> REF_OFFSET) & MAX_PRICE
            start = (meta >> WINDOW_START_OFFSET) & MASK_TIME
            if observed_at >= start + ((cfg >> C_WINDOW) & MASK_TIME):
                # a new window, anchored at the last price before it
                ref = old
                start = observed_at
            move: uint256 = unsafe_sub(max(price, ref), min(price, ref)) * BPS
            assert move <= ((cfg >> C_WINDOW_MOVE) & MASK_BPS) * ref, "oracle: window move"
            spread_on = move > ((cfg >> C_SPREAD_THRESHOLD) & MASK_BPS) * ref
        spread_until: uint256 = slot >> SPREAD_UNTIL_OFFSET
        if spread_on:
            # the spread runs from when the price lands on chain, not from its observation
            spread_until = max(spread_until, block.timestamp + ((cfg >> C_SPREAD_DURATION) & MASK_TIME))
        if start != (meta >> WINDOW_START_OFFSET) & MASK_TIME:
            meta = (meta & WINDOW_START_CLEAR) | (start << WINDOW_START_OFFSET)
            self._markets[market] = meta

        if meta >> FEED_OFFSET != 0:
            reference: uint256 = self._reference_price(meta, convert(meta >> FEED_OFFSET, address))
            assert math.abs_diff(price, reference) * BPS <= ((cfg >> C_DEVIATION) & MASK_BPS) * reference, "oracle: reference deviation"

        self._prices[market] = (
            price
            | (ref << REF_OFFSET)
            | (observed_at << OBSERVED_OFFSET)
            | (spread_until << SPREAD_UNTIL_OFFSET)
        )
        log PriceUpdate(market=market, price=price, observed_at=observed_at, spread_until=spread_until)


# ---------------------------------------------------------------- reads


@view
@external
def get_price(market: uint256, maximize: bool) -> uint256:
    """
    @notice The keeper price for anything that adds risk: opening, increasing, LP deposits
            and redemptions. Reverts when there is none or it is older than `max_price_age`.
    @param maximize True for the max price (rounded up), False for the min (rounded down);
           they differ only while the spread is on.
    @return WAD USD per whole index token.
    """
    # two slots: the price word (a nonzero one means a registered market) and the config
    slot: uint256 = self._prices[market]
    if slot == 0:
        assert self._markets[market] & REGISTERED_BIT != 0, "oracle: unknown market"
        raise "oracle: no price"
    cfg: uint256 = self._config
    assert not self._is_stale(slot, cfg), "oracle: stale price"
    spread: uint256 = 0
    if block.timestamp < slot >> SPREAD_UNTIL_OFFSET:
        spread = self._field(cfg, C_SPREAD, BPS_BITS)
    return self._apply_spread(slot & MAX_PRICE, spread, maximize)


@view
@external
def get_exit_price(market: uint256, maximize: bool) -> uint256:
    """
    @notice The price for risk-reducing actions (closing, adding collateral, liquidation):
            the keeper price while fresh; otherwise the reference feed's price with
            `fallback_spread_bps` in the pool's favour, so a keeper outage traps nobody.
            Reverts "oracle: no fresh price" when neither is fresh.
    @param maximize True for the max price (rounded up), False for the min (rounded down).
    @return WAD USD per whole index token.
    """
    # a nonzero price word means a registered market: the market word is read only for
    # the fallback
    slot: uint256 = self._prices[market]
    cfg: uint256 = self._config
    if slot != 0 and not self._is_stale(slot, cfg):
        spread: uint256 = 0
        if block.timestamp < slot >> SPREAD_UNTIL_OFFSET:
            spread = self._field(cfg, C_SPREAD, BPS_BITS)
        return self._apply_spread(slot & MAX_PRICE, spread, maximize)

    meta: uint256 = self._markets[market]
    assert meta & REGISTERED_BIT != 0, "oracle: unknown market"
    feed: address = convert(meta >> FEED_OFFSET, address)
    assert feed != empty(address), "oracle: no fresh price"
    answer: int256 = 0
    updated_at: uint256 = 0
    answer, updated_at = self._read_feed(feed)
    assert answer > 0, "oracle: no fresh price"
    assert updated_at + self._field(meta, FEED_AGE_OFFSET, TIME_BITS) >= block.timestamp, "oracle: no fresh price"
    reference: uint256 = self._scale_answer(answer, meta)
    return self._apply_spread(reference, self._field(cfg, C_FALLBACK_SPREAD, BPS_BITS), maximize)


@view
@external
def price_data(market: uint256) -> PriceData:
    """
    @notice The raw stored state of a market's price (no staleness check).
    """
    slot: uint256 = self._prices[market]
    return PriceData(
        price=slot & MAX_PRICE,
        observed_at=self._field(slot, OBSERVED_OFFSET, TIME_BITS),
        window_ref_price=self._field(slot, REF_OFFSET, PRICE_BITS),
        window_start=self._field(self._markets[market], WINDOW_START_OFFSET, TIME_BITS),
        spread_until=slot >> SPREAD_UNTIL_OFFSET,
    )


@view
@external
def price_timestamp(market: uint256) -> uint256:
    """
    @notice When the stored price of `market` was observed (0 before the first push).
    """
    return self._field(self._prices[market], OBSERVED_OFFSET, TIME_BITS)


@view
@external
def is_stale(market: uint256) -> bool:
    """
    @notice True when `market` has no keeper price or it is older than `max_price_age`.
    """
    slot: uint256 = self._prices[market]
    return slot == 0 or self._is_stale(slot, self._config)


@view
@external
def latest_round_data(market: uint256) -> (uint80, int256, uint256, uint256, uint80):
    """
    @notice The stored price in Chainlink's `latestRoundData` shape, with 8 decimals
            (rounded down). The round id is the observation time, so it only grows.
            Like Chainlink, it does not revert on a stale price: check `updatedAt`.
    @return roundId, answer, startedAt, updatedAt, answeredInRound
    """
    assert self._markets[market] & REGISTERED_BIT != 0, "oracle: unknown market"
    slot: uint256 = self._prices[market]
    observed: uint256 = self._field(slot, OBSERVED_OFFSET, TIME_BITS)
    # rounds down: 18 -> 8 decimals
    answer: int256 = convert((slot & MAX_PRICE) // 10 ** (WAD_DECIMALS - convert(FEED_DECIMALS, uint256)), int256)
    return convert(observed, uint80), answer, observed, observed, convert(observed, uint80)


@view
@external
def config() -> OracleConfig:
    """
    @notice The current bounds.
    """
    cfg: uint256 = self._config
    return OracleConfig(
        max_price_age=self._field(cfg, C_MAX_AGE, TIME_BITS),
        max_future_skew=self._field(cfg, C_SKEW, TIME_BITS),
        window=self._field(cfg, C_WINDOW, TIME_BITS),
        spread_duration=self._field(cfg, C_SPREAD_DURATION, TIME_BITS),
        max_jump_bps=self._field(cfg, C_JUMP, BPS_BITS),
        max_window_move_bps=self._field(cfg, C_WINDOW_MOVE, BPS_BITS),
        spread_threshold_bps=self._field(cfg, C_SPREAD_THRESHOLD, BPS_BITS),
        spread_bps=self._field(cfg, C_SPREAD, BPS_BITS),
        max_deviation_bps=self._field(cfg, C_DEVIATION, BPS_BITS),
        fallback_spread_bps=self._field(cfg, C_FALLBACK_SPREAD, BPS_BITS),
    )


@view
@external
def reference_feed(market: uint256) -> ReferenceFeed:
    """
    @notice The reference feed of `market` (empty when none is set).
    """
    meta: uint256 = self._markets[market]
    return ReferenceFeed(
        feed=convert(meta >> FEED_OFFSET, address),
        max_age=self._field(meta, FEED_AGE_OFFSET, TIME_BITS),
        decimals=self._field(meta, FEED_DECIMALS_OFFSET, 8),
    )


@view
@external
def is_market(market: uint256) -> bool:
    """
    @notice True when `market` is registered.
    """
    return self._markets[market] & REGISTERED_BIT != 0


# ---------------------------------------------------------------- admin


@external
def add_market(name: String[MAX_NAME]) -> uint256:
    """
    @notice Register a market; its id is the next integer from 1.
    @param name A display name such as "ETH" (not unique-checked; ids are the identity).
    @return The new market's id.
    """
    self._only_admin()
    assert len(name) > 0, "oracle: empty name"
    market: uint256 = self.market_count + 1
    self.market_count = market
    self.market_names[market] = name
    self._markets[market] = REGISTERED_BIT
    log MarketAdded(market=market, name=name)
    return market


@external
def set_updater(account: address, allowed: bool):
    """
    @notice Authorise or remove a price updater (a keeper, or a protocol contract that
            itself accepts only keepers).
    """
    self._only_admin()
    assert account != empty(address), "oracle: zero address"
    self.updaters[account] = allowed
    log UpdaterSet(account=account, allowed=allowed)


@external
def set_config(config: OracleConfig):
    """
    @notice Replace every bound at once; each is checked against its hard limit.
    """
    self._only_admin()
    self._set_config(config)


@external
def set_leverage_source(source: address):
    """
    @notice Link the contract whose `max_leverage_bps()` (the highest max leverage of any
            market: the Configurator) bounds `max_jump_bps`: one push may move a price at
            most the initial margin of a position at max leverage
            (max_jump_bps x max_leverage_bps <= 10_000 x 10_000), so a hedged long and short
            at max leverage cannot gain across one push more than the losing leg's
            collateral. Checked now against the current config, and on every `set_config`.
            Once linked it cannot be unlinked (the empty address is refused), only replaced.
    """
    self._only_admin()
    assert source != empty(address), "oracle: zero address"
    self.leverage_source = source
    self._check_jump(self._field(self._config, C_JUMP, BPS_BITS))
    log LeverageSourceSet(source=source)


@external
def set_reference_feed(market: uint256, feed: address, max_age: uint256):
    """
    @notice Set (or, with the empty address, remove) the Chainlink-style reference feed
            of `market`. Its decimals are read now and must be at most 18.
    @param max_age Seconds after which the feed's answer counts as stale (its heartbeat).
    """
    self._only_admin()
    meta: uint256 = self._markets[market]
    assert meta & REGISTERED_BIT != 0, "oracle: unknown market"
    decimals: uint256 = 0
    if feed != empty(address):
        assert max_age > 0 and max_age <= MAX_REFERENCE_AGE, "oracle: bad reference age"
        decimals = convert(staticcall IAggregatorV3(feed).decimals(), uint256)
        assert decimals <= WAD_DECIMALS, "oracle: bad reference decimals"
    else:
        assert max_age == 0, "oracle: bad reference age"
    window_start: uint256 = self._field(meta, WINDOW_START_OFFSET, TIME_BITS)
    self._markets[market] = (
        REGISTERED_BIT
        | (decimals << FEED_DECIMALS_OFFSET)
        | (max_age << FEED_AGE_OFFSET)
        | (window_start << WINDOW_START_OFFSET)
        | (convert(feed, uint256) << FEED_OFFSET)
    )
    log ReferenceFeedSet(market=market, feed=feed, max_age=max_age, decimals=decimals)


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
    assert msg.sender == self.pending_admin, "oracle: not pending admin"
    log AdminTransferred(previous_admin=self.admin, admin=msg.sender)
    self.admin = msg.sender
    self.pending_admin = empty(address)


# ---------------------------------------------------------------- internals


@internal
def _only_admin():
    assert msg.sender == self.admin, "oracle: not admin"


@internal
def _set_config(c: OracleConfig):
    assert c.max_price_age >= MIN_PRICE_AGE and c.max_price_age <= MAX_PRICE_AGE, "oracle: bad max_price_age"
    assert c.max_future_skew <= MAX_FUTURE_SKEW, "oracle: bad max_future_skew"
    assert c.window >= MIN_WINDOW and c.window <= MAX_WINDOW, "oracle: bad window"
    assert c.spread_duration <= MAX_SPREAD_DURATION, "oracle: bad spread_duration"
    assert c.max_jump_bps > 0 and c.max_jump_bps <= MAX_JUMP_BPS, "oracle: bad max_jump_bps"
    assert c.max_window_move_bps >= c.max_jump_bps and c.max_window_move_bps <= MAX_WINDOW_MOVE_BPS, "oracle: bad max_window_move_bps"
    assert c.spread_threshold_bps > 0 and c.spread_threshold_bps <= MAX_SPREAD_THRESHOLD_BPS, "oracle: bad spread_threshold_bps"
    assert c.spread_bps <= MAX_SPREAD_BPS, "oracle: bad spread_bps"
    assert c.max_deviation_bps > 0 and c.max_deviation_bps <= MAX_DEVIATION_BPS, "oracle: bad max_deviation_bps"
    assert c.fallback_spread_bps <= MAX_FALLBACK_SPREAD_BPS, "oracle: bad fallback_spread_bps"
    self._check_jump(c.max_jump_bps)
    self._config = (
        (c.max_price_age << C_MAX_AGE)
        | (c.max_future_skew << C_SKEW)
        | (c.window << C_WINDOW)
        | (c.spread_duration << C_SPREAD_DURATION)
        | (c.max_jump_bps << C_JUMP)
        | (c.max_window_move_bps << C_WINDOW_MOVE)
        | (c.spread_threshold_bps << C_SPREAD_THRESHOLD)
        | (c.spread_bps << C_SPREAD)
        | (c.max_deviation_bps << C_DEVIATION)
        | (c.fallback_spread_bps << C_FALLBACK_SPREAD)
    )
    log ConfigSet(
        max_price_age=c.max_price_age,
        max_future_skew=c.max_future_skew,
        window=c.window,
        spread_duration=c.spread_duration,
        max_jump_bps=c.max_jump_bps,
        max_window_move_bps=c.max_window_move_bps,
        spread_threshold_bps=c.spread_threshold_bps,
        spread_bps=c.spread_bps,
        max_deviation_bps=c.max_deviation_bps,
        fallback_spread_bps=c.fallback_spread_bps,
    )


@internal
@view
def _check_jump(max_jump_bps: uint256):
    source: address = self.leverage_source
    if source != empty(address):
        leverage: uint256 = staticcall ILeverageSource(source).max_leverage_bps()
        assert max_jump_bps * leverage <= BPS * BPS, "oracle: jump above max leverage margin"


@internal
@pure
def _field(word: uint256, offset: uint256, width: uint256) -> uint256:
    return (word >> offset) & ((1 << width) - 1)


@internal
@view
def _is_stale(slot: uint256, cfg: uint256) -> bool:
    return self._field(slot, OBSERVED_OFFSET, TIME_BITS) + self._field(cfg, C_MAX_AGE, TIME_BITS) < block.timestamp


@internal
@pure
def _apply_spread(price: uint256, spread_bps: uint256, maximize: bool) -> uint256:
    if spread_bps == 0:
        return price
    if maximize:
        return math.bps_of(price, BPS + spread_bps, True)  # max price rounds up
    return math.bps_of(price, BPS - spread_bps, False)  # min price rounds down


@internal
@view
def _read_feed(feed: address) -> (int256, uint256):
    round_id: uint80 = 0
    answer: int256 = 0
    started_at: uint256 = 0
    updated_at: uint256 = 0
    answered_in: uint80 = 0
    round_id, answer, started_at, updated_at, answered_in = staticcall IAggregatorV3(feed).latestRoundData()
    return answer, updated_at


@internal
@pure
def _scale_answer(answer: int256, meta: uint256) -> uint256:
    # exact: feed decimals <= 18
    return convert(answer, uint256) * 10 ** (WAD_DECIMALS - self._field(meta, FEED_DECIMALS_OFFSET, 8))


@internal
@view
def _reference_price(meta: uint256, feed: address) -> uint256:
    answer: int256 = 0
    updated_at: uint256 = 0
    answer, updated_at = self._read_feed(feed)
    assert answer > 0, "oracle: reference invalid"
    assert updated_at + self._field(meta, FEED_AGE_OFFSET, TIME_BITS) >= block.timestamp, "oracle: reference stale"
    return self._scale_answer(answer, meta)
