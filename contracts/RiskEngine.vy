# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title perpool RiskEngine
@notice Auto-deleveraging (ADL). When one market side's unrealised profit grows too large
        for the pool, anyone may close part of its most profitable positions at the oracle
        price, down to a target. Perp runs the close (`adl_decrease`, callable only by
        this contract); this contract decides whether and how much.
@dev pnl factor of a side = max(net unrealised PnL of the side, 0) / pool amount, both WAD
     USD at the fresh close price (longs at the min price, shorts at the max). The pool
     amount is the pool's tokens without unrealised PnL or pending fees (GMX v2's "pool
     USD without PnL").
     - trigger: factor > max_pnl_factor_for_adl (strict);
     - target: a close is clamped so the factor lands no lower than
       min_pnl_factor_after_adl, and re-checked after the close ("risk: adl overshoot");
     - ranking: `adl_score` = (PnL / collateral) x (size / collateral), WAD; keepers go
       down it, highest first, ties broken by position key ascending; every
       AutoDeleverage event records the score so anyone can audit the order afterwards.
     The settings are the Configurator's RiskConfig of the market.
"""

from contracts.lib import math
from contracts.lib import market_types

# ---------------------------------------------------------------- interfaces

interface IPerpRisk:
    def get_position(account: address, market: uint256, is_long: bool) -> market_types.Position: view
    def position_values(account: address, market: uint256, is_long: bool, price: uint256) -> market_types.PositionValues: view
    def open_interest(market: uint256, is_long: bool) -> (uint256, uint256): view
    def close_price(market: uint256, is_long: bool) -> uint256: view
    def position_key(account: address, market: uint256, is_long: bool) -> bytes32: view
    def adl_decrease(account: address, market: uint256, is_long: bool, size_delta: uint256) -> uint256: nonpayable
    def market_status(market: uint256) -> uint256: view

interface IVaultPool:
    def pool_amount() -> uint256: view
    def token_scale() -> uint256: view

interface IConfigRisk:
    def configs(market: uint256) -> market_types.MarketConfig: view
    def risk_configs(market: uint256) -> market_types.RiskConfig: view

# ---------------------------------------------------------------- constants

BPS: constant(uint256) = 10_000
WAD: constant(uint256) = 10**18
MICRO_USD: constant(uint256) = 10**12  # WAD: part of the clamp's rounding margin
ROUNDING_UNITS: constant(uint256) = 4  # token units the close may round in the pool's favour
SETTLED: constant(uint256) = 2  # Perp's market status of a settled market

# ---------------------------------------------------------------- structs

struct AdlState:
    pnl_usd: int256  # WAD: the side's net unrealised PnL at the close price
    pool_usd: uint256  # WAD: the pool amount, the factor's denominator
    pnl_factor_bps: uint256  # max(pnl, 0) / pool, rounded down
    max_pnl_factor_for_adl_bps: uint256
    min_pnl_factor_after_adl_bps: uint256
    triggered: bool

# ---------------------------------------------------------------- storage

perp: public(immutable(IPerpRisk))
vault: public(immutable(IVaultPool))
configurator: public(immutable(IConfigRisk))
token_scale: public(immutable(uint256))

# ---------------------------------------------------------------- events

event AutoDeleverage:
    key: indexed(bytes32)
    account: indexed(address)
    market: indexed(uint256)
    is_long: bool
    keeper: address
    score: int256  # WAD: PnL / collateral x size / collateral, before the close
    price: uint256  # WAD close price
    size_requested: uint256  # WAD USD
    size_delta: uint256  # WAD USD closed, after the clamp
    amount_out: uint256  # token units paid to the owner
    pnl_factor_before_bps: uint256
    pnl_factor_after_bps: uint256


@deploy
def __init__(perp_: address, vault_: address, configurator_: address):
    """
    @param perp_ Perp; the Configurator must make this contract its deleverager.
    @param vault_ The Vault (its pool amount is the pnl factor's denominator).
    @param configurator_ The Configurator holding each market's RiskConfig.
    """
    perp = IPerpRisk(perp_)
    vault = IVaultPool(vault_)
    configurator = IConfigRisk(configurator_)
    token_scale = staticcall IVaultPool(vault_).token_scale()


@external
def auto_deleverage(account: address, market: uint256, is_long: bool, size_delta: uint256) -> uint256:
    """
    @notice While the side's pnl factor exceeds max_pnl_factor_for_adl, close up to
            `size_delta` of a profitable position at the fresh oracle price, paying its
            owner as a normal close would (close fee included, nothing more). Anyone may
            call. The size is clamped to the position and so that the factor lands no
            lower than min_pnl_factor_after_adl.
    @param size_delta WAD USD requested.
    @return WAD USD closed.
    """
    assert size_delta != 0, "risk: zero size"
    pos: market_types.Position = staticcall perp.get_position(account, market, is_long)
    assert pos.size_usd != 0, "risk: no position"
    price: uint256 = staticcall perp.close_price(market, is_long)
    before: AdlState = self._state(market, is_long, price)
    assert before.triggered, "risk: adl not triggered"
    values: market_types.PositionValues = staticcall perp.position_values(account, market, is_long, price)
    assert values.pnl > 0, "risk: position not profitable"
    size: uint256 = min(min(size_delta, pos.size_usd), self._clamp(market, pos, values, before))
    assert size != 0, "risk: adl target reached"
    score: int256 = self._score(pos, values.pnl)

    amount_out: uint256 = extcall perp.adl_decrease(account, market, is_long, size)

    after: AdlState = self._state(market, is_long, price)
    # the clamp is conservative; this re-check is the guarantee (on the factor's own
    # numerator, max(PnL, 0): a side that ends at -1 wei of PnL is at factor 0, not below it)
    assert max(after.pnl_usd, 0) * convert(BPS, int256) >= convert(before.min_pnl_factor_after_adl_bps * after.pool_usd, int256), "risk: adl overshoot"
    log AutoDeleverage(
        key=staticcall perp.position_key(account, market, is_long),
        account=account,
        market=market,
        is_long=is_long,
        keeper=msg.sender,
        score=score,
        price=price,
        size_requested=size_delta,
        size_delta=size,
        amount_out=amount_out,
        pnl_factor_before_bps=before.pnl_factor_bps,
        pnl_factor_after_bps=after.pnl_factor_bps,
    )
    return size


@external
def settle_position(account: address, market: uint256, is_long: bool) -> uint256:
    """
    @notice In a settled (wound-down) market, close any position at the settlement price
            and pay its owner what it is worth, as a full close. Anyone may call.
    @return Token units paid to `account`.
    """
    assert staticcall perp.market_status(market) == SETTLED, "risk: market not settled"
    pos: market_types.Position = staticcall perp.get_position(account, market, is_long)
    assert pos.size_usd != 0, "risk: no position"
    return extcall perp.adl_decrease(account, market, is_long, pos.size_usd)


@view
@external
def adl_state(market: uint256, is_long: bool) -> AdlState:
    """
    @notice A side's pnl factor against the ADL trigger, at the fresh close price.
    """
    return self._state(market, is_long, staticcall perp.close_price(market, is_long))


@view
@external
def adl_score(account: address, market: uint256, is_long: bool) -> int256:
    """
    @notice A position's ADL ranking, WAD: (PnL / collateral) x (size / collateral) at the
            fresh close price; negative for a loser, zero for no position.
    """
    pos: market_types.Position = staticcall perp.get_position(account, market, is_long)
    if pos.size_usd == 0:
        return 0
    price: uint256 = staticcall perp.close_price(market, is_long)
    return self._score(pos, (staticcall perp.position_values(account, market, is_long, price)).pnl)


@view
@external
def adl_size_limit(account: address, market: uint256, is_long: bool) -> uint256:
    """
    @notice The most `auto_deleverage` would close of this position now (0 when ADL is not
            triggered or the position is not profitable).
    """
    pos: market_types.Position = staticcall perp.get_position(account, market, is_long)
    if pos.size_usd == 0:
        return 0
    price: uint256 = staticcall perp.close_price(market, is_long)
    state: AdlState = self._state(market, is_long, price)
    values: market_types.PositionValues = staticcall perp.position_values(account, market, is_long, price)
    if not state.triggered or values.pnl <= 0:
        return 0
    return min(pos.size_usd, self._clamp(market, pos, values, state))


# ---------------------------------------------------------------- internals


@internal
@view
def _state(market: uint256, is_long: bool, price: uint256) -> AdlState:
    usd: uint256 = 0
    tokens: uint256 = 0
    usd, tokens = staticcall perp.open_interest(market, is_long)
    r: market_types.RiskConfig = staticcall configurator.risk_configs(market)
    state: AdlState = AdlState(
        pnl_usd=math.pnl_usd(usd, tokens, price, is_long),
        pool_usd=staticcall vault.pool_amount() * token_scale,
        pnl_factor_bps=0,
        max_pnl_factor_for_adl_bps=r.max_pnl_factor_for_adl_bps,
        min_pnl_factor_after_adl_bps=r.min_pnl_factor_after_adl_bps,
        triggered=False,
    )
    if state.pnl_usd <= 0:
        return state
    profit: uint256 = convert(state.pnl_usd, uint256)
    state.pnl_factor_bps = max_value(uint256)
    if state.pool_usd != 0:
        state.pnl_factor_bps = math.mul_div(profit, BPS, state.pool_usd, False)
    state.triggered = profit * BPS > state.max_pnl_factor_for_adl_bps * state.pool_usd
    return state


@internal
@view
def _clamp(market: uint256, pos: market_types.Position, v: market_types.PositionValues, state: AdlState) -> uint256:
    """
    @dev The largest size d whose close keeps the side's factor at or above the target f.
         Closing d of a position of size Z with profit R realises r = R d / Z: the side's
         profit becomes S - r, and the pool P - q r + fee(d) + the position's pending fees
         (q <= 1: the traders' profit cap scale, cap / S above the cap). Solving
         (S - r) >= f P' for d:
             d <= (S - f P'') Z / (R (1 - f q) + f fee_bps Z),
         P'' = P + pending fees + a rounding margin. Every term rounds so d is smaller.
    """
    f: uint256 = state.min_pnl_factor_after_adl_bps
    pool: int256 = convert(state.pool_usd + v.borrowing_fee + ROUNDING_UNITS * token_scale + MICRO_USD, int256) - v.funding
    numerator: int256 = state.pnl_usd * convert(BPS, int256) - convert(f, int256) * pool
    if numerator <= 0:
        return 0
    pnl: uint256 = convert(v.pnl, uint256)
    cap: uint256 = math.bps_of(state.pool_usd, (staticcall configurator.risk_configs(market)).max_pnl_factor_for_traders_bps, False)
    paid: uint256 = f * pnl  # f q R, rounded down (a smaller d)
    if state.pnl_usd > convert(cap, int256):
        paid = math.mul_div(paid, cap, convert(state.pnl_usd, uint256), False)
    fee_bps: uint256 = (staticcall configurator.configs(market)).position_fee_bps
    denominator: uint256 = pnl * BPS - paid + math.mul_div(f * fee_bps, pos.size_usd, BPS, True)
    return math.mul_div(convert(numerator, uint256), pos.size_usd, denominator, False)


@internal
@view
def _score(pos: market_types.Position, pnl: int256) -> int256:
    # (PnL / collateral) x (size / collateral), WAD, rounded toward zero
    collateral: uint256 = max(pos.collateral * token_scale, 1)
    score: uint256 = math.mul_div(math.mul_div(convert(abs(pnl), uint256), WAD, collateral, False), pos.size_usd, collateral, False)
    if pnl < 0:
        return -convert(score, int256)
    return convert(score, int256)
