# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title perpool OrderBook
@notice Two-step trading and LP flows: a trader places an order (market or limit
        increase, market decrease, take-profit, stop-loss) with its collateral and an
        execution fee escrowed in the Vault, an LP a deposit (tokens escrowed) or a redeem
        (shares escrowed) order; a keeper fills it later at the oracle price, and only at a
        price observed after the order was placed or last updated. Nobody can trade, or
        deposit and redeem, on a price they already know: where Perp's direct fills (the
        Vault's direct LP flows) are off, this is the only way to trade (to provide
        liquidity).
@dev Timing (block time, seconds; `placed_at` = when the order was created or updated):
     - every fill needs a fresh keeper price whose observation time is strictly newer
       than the order's `price_floor` = max(placed_at, the market's stored observation
       time then): a price pushed with a future timestamp before the order is never used;
       an LP order prices the whole pool, so it needs such a price in every market that
       is not settled (its floor: the newest of their observation times and placed_at);
     - authorised keepers fill at once; from placed_at + `timeout` anyone may (a keeper
       outage traps nobody), and the owner may cancel a market order (before that, an
       early cancel would be a free look at the next price); trigger orders can be
       cancelled at any time;
     - market orders (and LP orders) expire at placed_at + `expiry`: then anyone may
       cancel them and everything goes back to the owner.
     A batch decides each order by pre-checks (an order is filled, cancelled or left
     pending) and never by catching a revert: Perp's `trade_for` returns its refusal
     instead of reverting. Money never leaves to an untrusted account mid-batch: fees,
     payouts and refunds are credited in the Vault (`Vault.claim` pays them); only an
     owner's own cancel transfers its refund, to the caller, after every write.
     Fees and collateral are token units of the Vault's token; prices WAD USD per index
     token; sizes WAD USD (contracts/lib/math.vy).
"""

from contracts.interfaces import IOracle
from contracts.lib import settlement

# ---------------------------------------------------------------- interfaces


interface IVaultEscrow:
    def settle(s: settlement.Settlement): nonpayable
    def token_scale() -> uint256: view
    def deposit_escrowed(owner: address, amount: uint256, min_shares: uint256) -> (uint256, uint256): nonpayable
    def redeem_escrowed(owner: address, shares: uint256, min_amount: uint256) -> (uint256, uint256): nonpayable
    def take_shares(owner: address, shares: uint256): nonpayable
    def transfer(receiver: address, amount: uint256) -> bool: nonpayable
    def paused() -> bool: view
    def lp_reason(code: uint256) -> String[40]: view

interface IPerpOrders:
    def trade_for(account: address, market: uint256, is_long: bool, is_increase: bool, collateral_delta: uint256, size_delta: uint256, acceptable_price: uint256) -> (uint256, uint256): nonpayable
    def is_market(market: uint256) -> bool: view
    def market_status(market: uint256) -> uint256: view
    def paused() -> bool: view
    def oracle() -> address: view
    def vault() -> address: view

interface IOracleMarkets:
    def market_count() -> uint256: view

interface IOraclePush:
    def set_prices(markets: DynArray[uint256, MAX_PUSH], prices: DynArray[uint256, MAX_PUSH], observed_at: uint256): nonpayable

# ---------------------------------------------------------------- constants

MAX_BATCH: constant(uint256) = 64  # orders per execution batch
MAX_PUSH: constant(uint256) = 64  # prices per push (the Oracle's own batch bound is larger)
MAX_MARKETS: constant(uint256) = 256  # Oracle market ids an LP order's prices are checked over

# order kinds
MARKET_INCREASE: constant(uint256) = 0
LIMIT_INCREASE: constant(uint256) = 1
MARKET_DECREASE: constant(uint256) = 2
TAKE_PROFIT: constant(uint256) = 3
STOP_LOSS: constant(uint256) = 4
LP_DEPOSIT: constant(uint256) = 5  # tokens escrowed; shares minted to the owner
LP_REDEEM: constant(uint256) = 6  # shares escrowed; tokens credited to the owner

# what a batch did with an order
PENDING: constant(uint256) = 0  # left as it was (not yet executable)
EXECUTED: constant(uint256) = 1
CANCELLED: constant(uint256) = 2

# Perp's market status (0 active, 1 close-only, 2 settled) and two of its refusal codes
ACTIVE: constant(uint256) = 0
SETTLED: constant(uint256) = 2
PERP_PAUSED: constant(uint256) = 3
PERP_MARKET_CLOSING: constant(uint256) = 4

# reasons: 1-16 are Perp's refusals (its REFUSED_* codes), 32-47 the order book's, 48
# and up the Vault's LP refusals (its LP_* codes, named by `Vault.lp_reason`)
NOT_FOUND: constant(uint256) = 32
TOO_EARLY: constant(uint256) = 33  # not a keeper, and the timeout has not passed
EXPIRED: constant(uint256) = 34
PRICE_STALE: constant(uint256) = 35
PRICE_NOT_NEWER: constant(uint256) = 36
TRIGGER_NOT_MET: constant(uint256) = 37
PRICE_NOT_ACCEPTABLE: constant(uint256) = 38
MARKET_SETTLED: constant(uint256) = 39
BY_OWNER: constant(uint256) = 40
VAULT_CODES: constant(uint256) = 48  # the first Vault code
VAULT_PAUSED: constant(uint256) = 48  # the Vault's LP_PAUSED: deposits wait out a pause

# settings' bounds
MIN_TIMEOUT: constant(uint256) = 10  # s
MAX_TIMEOUT: constant(uint256) = 3_600  # s
MAX_EXPIRY: constant(uint256) = 86_400  # s
MAX_MIN_FEE_USD: constant(uint256) = 100 * 10**18  # the minimum fee may be set up to $100
DEFAULT_TIMEOUT: constant(uint256) = 180  # s (GMX v1's public-execution delay)
DEFAULT_EXPIRY: constant(uint256) = 1_800  # s

# packed order: word 0 = owner | market | kind | is_long | placed_at | price_floor
OWNER_BITS: constant(uint256) = 160
O_MARKET: constant(uint256) = 160
O_KIND: constant(uint256) = 176
O_LONG: constant(uint256) = 184
O_PLACED: constant(uint256) = 192
O_FLOOR: constant(uint256) = 224
# word 1 = size_delta | collateral_delta; word 2 = acceptable | trigger | execution_fee
W_COLLATERAL: constant(uint256) = 128
W_TRIGGER: constant(uint256) = 96
W_FEE: constant(uint256) = 192
MAX_SIZE: constant(uint256) = 2**128 - 1  # WAD USD (Perp's bound on a position's size)
MAX_COLLATERAL: constant(uint256) = 2**96 - 1  # token units (Perp's bound on collateral)
MAX_PRICE: constant(uint256) = 2**96 - 1  # WAD (the Oracle's bound on a price)
MAX_FEE: constant(uint256) = 2**64 - 1  # token units
MASK_96: constant(uint256) = 2**96 - 1
MASK_16: constant(uint256) = 2**16 - 1
MASK_32: constant(uint256) = 2**32 - 1
MASK_128: constant(uint256) = 2**128 - 1
MAX_MARKET_ID: constant(uint256) = 2**16 - 1  # the order word's market field

# ---------------------------------------------------------------- structs

struct Order:
    owner: address
    market: uint256
    kind: uint256  # MARKET_INCREASE, LIMIT_INCREASE, MARKET_DECREASE, TAKE_PROFIT, STOP_LOSS, LP_DEPOSIT, LP_REDEEM
    is_long: bool
    collateral_delta: uint256  # token units: escrowed (increase, LP deposit) or to withdraw (decrease)
    size_delta: uint256  # WAD USD; LP redeem: the shares escrowed (18 decimals)
    acceptable_price: uint256  # WAD: the worst fill accepted; LP orders: the least shares (deposit) or token units (redeem)
    trigger_price: uint256  # WAD, limit/take-profit/stop-loss only
    execution_fee: uint256  # token units, escrowed, paid to whoever fills or rejects it
    placed_at: uint256  # s: block time of creation or last update
    price_floor: uint256  # s: a fill needs a price observed strictly after this

# ---------------------------------------------------------------- immutables and storage

perp: public(immutable(IPerpOrders))
oracle: public(immutable(IOracle))
vault: public(immutable(IVaultEscrow))
token_scale: public(immutable(uint256))

admin: public(address)
pending_admin: public(address)
keepers: public(HashMap[address, bool])
min_execution_fee: public(uint256)  # token units
timeout: public(uint256)  # s: public execution and owner cancels of market orders from here
expiry: public(uint256)  # s: market orders cannot fill from here on
next_order_id: public(uint256)  # ids start at 1

_orders: HashMap[uint256, uint256[3]]

# ---------------------------------------------------------------- events

event OrderCreated:
    order_id: indexed(uint256)
    owner: indexed(address)
    market: indexed(uint256)
    kind: uint256
    is_long: bool
    collateral_delta: uint256
    size_delta: uint256
    acceptable_price: uint256
    trigger_price: uint256
    execution_fee: uint256
    placed_at: uint256
    price_floor: uint256

event OrderUpdated:
    order_id: indexed(uint256)
    owner: indexed(address)
    size_delta: uint256
    acceptable_price: uint256
    trigger_price: uint256
    placed_at: uint256
    price_floor: uint256

event OrderExecuted:
    order_id: indexed(uint256)
    owner: indexed(address)
    market: indexed(uint256)
    executor: address  # the caller
    fee_receiver: address
    price: uint256  # WAD, the oracle price the fill used (0 for an LP order: the Vault's Deposit / Redeem log has its figures)
    execution_fee: uint256
    amount_credited: uint256  # token units credited to the owner (decreases, LP redeems)

event OrderCancelled:
    order_id: indexed(uint256)
    owner: indexed(address)
    market: indexed(uint256)
    canceller: address
    reason_code: uint256
    reason: String[40]
    refund: uint256  # token units back to the owner (collateral; the fee too when by the owner or by circumstance)
    fee_receiver: address  # credited the execution fee (empty when it went back to the owner)
    fee_paid: uint256  # token units of the execution fee paid to fee_receiver
    shares_refund: uint256  # LP shares back to the owner (an LP redeem order)

event KeeperSet:
    keeper: indexed(address)
    allowed: bool

event SettingsSet:
    min_execution_fee: uint256
    timeout: uint256
    expiry: uint256

event AdminTransferStarted:
    admin: indexed(address)
    pending_admin: indexed(address)

event AdminTransferred:
    previous_admin: indexed(address)
    admin: indexed(address)


@deploy
def __init__(perp_: address, min_execution_fee_: uint256):
    """
    @param perp_ Perp; the Configurator must make this contract its order book, the Vault
           its controller, and the Oracle its updater (for `execute_orders_with_prices`).
    @param min_execution_fee_ Token units; timeout and expiry start at 180 s and 30 min.
    """
    perp = IPerpOrders(perp_)
    oracle = IOracle(staticcall IPerpOrders(perp_).oracle())
    vault = IVaultEscrow(staticcall IPerpOrders(perp_).vault())
    token_scale = staticcall IVaultEscrow(staticcall IPerpOrders(perp_).vault()).token_scale()
    self.admin = msg.sender
    self.next_order_id = 1
    self._set_settings(min_execution_fee_, DEFAULT_TIMEOUT, DEFAULT_EXPIRY)


# ---------------------------------------------------------------- traders


@external
def create_order(
    market: uint256,
    kind: uint256,
    is_long: bool,
    collateral_delta: uint256,
    size_delta: uint256,
    acceptable_price: uint256,
    trigger_price: uint256,
    execution_fee: uint256,
) -> uint256:
    """
    @notice Place an order. Increases escrow `collateral_delta` + `execution_fee` (approve
            the Vault first); decreases escrow only the fee. A size of 0 changes only the
            collateral (a top-up or a withdrawal). A decrease whose size exceeds the
            position when it fills closes all of it; its payout is credited to the owner
            in the Vault (`Vault.claim`).
    @param kind 0 market increase, 1 limit increase, 2 market decrease, 3 take-profit,
           4 stop-loss.
    @param acceptable_price Worst fill accepted (longs: highest to open, lowest to close;
           shorts the reverse); above the largest oracle price it means "any".
    @param trigger_price Limit: longs fill at or below it, shorts at or above. Take-profit:
           longs at or above, shorts at or below. Stop-loss: longs at or below, shorts at
           or above. Compared with the price the fill uses; zero for market orders. It
           must not already hold at the current fresh price (checked when there is one).
    @param execution_fee Token units, at least `min_execution_fee`.
    @return The order id.
    """
    assert market <= MAX_MARKET_ID and staticcall perp.is_market(market), "orders: unknown market"
    assert kind <= STOP_LOSS, "orders: bad kind"
    assert collateral_delta <= MAX_COLLATERAL, "orders: collateral too large"
    self._check_fee(execution_fee)
    increase: bool = kind <= LIMIT_INCREASE
    self._check_sizes(market, increase, size_delta, collateral_delta)
    self._check_trigger(market, kind, is_long, trigger_price)

    order_id: uint256 = self._store(
        market, kind, is_long, collateral_delta, size_delta, min(acceptable_price, MAX_PRICE), trigger_price,
        execution_fee, self._price_floor(market),
    )
    escrow: uint256 = execution_fee + (collateral_delta if increase else 0)
    if escrow != 0:
        self._settle(msg.sender, escrow, convert(escrow, int256), empty(address), 0, empty(address), 0)
    return order_id


@external
def create_deposit_order(amount: uint256, min_shares: uint256, execution_fee: uint256) -> uint256:
    """
    @notice Ask to deposit `amount` tokens into the pool: `amount` + `execution_fee` are
            escrowed now (approve the Vault first); a keeper fills it at the pool value
            priced with prices observed after this call in every market that is not
            settled, exactly as `Vault.deposit` (the shares go to the caller and start its
            cooldown). Refused while deposits are paused; a pause after it leaves the order
            waiting. It expires like a market order; its owner may cancel it from
            placed_at + `timeout`.
    @param min_shares The order is cancelled ("vault: slippage", the fee paid to the
           keeper) if it would mint fewer shares.
    @return The order id.
    """
    assert amount != 0, "orders: zero amount"
    assert amount <= MAX_COLLATERAL, "orders: amount too large"
    assert min_shares <= MAX_PRICE, "orders: min out too large"
    self._check_fee(execution_fee)
    assert not staticcall vault.paused(), "orders: deposits paused"
    order_id: uint256 = self._store(0, LP_DEPOSIT, False, amount, 0, min_shares, 0, execution_fee, self._lp_floor())
    escrow: uint256 = amount + execution_fee
    self._settle(msg.sender, escrow, convert(escrow, int256), empty(address), 0, empty(address), 0)
    return order_id


@external
def create_redeem_order(shares: uint256, min_amount: uint256, execution_fee: uint256) -> uint256:
    """
    @notice Ask to redeem `shares` of the caller's LP shares: the shares move to this
            contract now (refused during the caller's cooldown) and the fee is escrowed
            (approve the Vault for it); a keeper fills it at the pool value priced with
            prices observed after this call in every market that is not settled, exactly
            as `Vault.redeem`, and the tokens are credited to the caller in the Vault
            (`Vault.claim`). On a cancel the shares go back.
    @param min_amount The order is cancelled ("vault: slippage", the fee paid to the
           keeper, the shares back) if it would pay fewer token units.
    @return The order id.
    """
    assert shares != 0, "orders: zero shares"
    assert shares <= MAX_SIZE, "orders: shares too large"
    assert min_amount <= MAX_PRICE, "orders: min out too large"
    self._check_fee(execution_fee)
    order_id: uint256 = self._store(0, LP_REDEEM, False, 0, shares, min_amount, 0, execution_fee, self._lp_floor())
    extcall vault.take_shares(msg.sender, shares)
    if execution_fee != 0:
        self._settle(msg.sender, execution_fee, convert(execution_fee, int256), empty(address), 0, empty(address), 0)
    return order_id


@external
def update_order(order_id: uint256, size_delta: uint256, acceptable_price: uint256, trigger_price: uint256):
    """
    @notice Change a trigger order's size, acceptable price and trigger price (its owner
            only). The order's clock restarts: it fills only at a price observed after
            this update. Market orders cannot be updated (cancel them instead).
    """
    o: Order = self._load(order_id)
    assert o.owner == msg.sender, "orders: not owner"
    assert o.kind == LIMIT_INCREASE or o.kind == TAKE_PROFIT or o.kind == STOP_LOSS, "orders: market order"
    self._check_sizes(o.market, o.kind == LIMIT_INCREASE, size_delta, o.collateral_delta)
    self._check_trigger(o.market, o.kind, o.is_long, trigger_price)
    price_floor: uint256 = self._price_floor(o.market)
    words: uint256[3] = self._orders[order_id]
    self._orders[order_id] = [
        (words[0] & ~(MASK_32 << O_PLACED) & ~(MASK_32 << O_FLOOR)) | (block.timestamp << O_PLACED) | (price_floor << O_FLOOR),
        size_delta | (o.collateral_delta << W_COLLATERAL),
        min(acceptable_price, MAX_PRICE) | (trigger_price << W_TRIGGER) | (o.execution_fee << W_FEE),
    ]
    log OrderUpdated(
        order_id=order_id,
        owner=msg.sender,
        size_delta=size_delta,
        acceptable_price=min(acceptable_price, MAX_PRICE),
        trigger_price=trigger_price,
        placed_at=block.timestamp,
        price_floor=price_floor,
    )


@external
def cancel_order(order_id: uint256):
    """
    @notice Cancel an order. Its owner: a trigger order at any time, a market or LP
            order from placed_at + `timeout` (everything escrowed is transferred back to
            the owner). Anyone: an expired market or LP order (everything is credited back
            to the owner in the Vault; an LP redeem order's shares are transferred back).
    """
    o: Order = self._load(order_id)
    assert o.owner != empty(address), "orders: no order"
    market_order: bool = self._is_market_order(o.kind)
    if msg.sender == o.owner:
        if market_order:
            assert block.timestamp >= o.placed_at + self.timeout, "orders: too early to cancel"
        self._cancel(order_id, o, BY_OWNER, False, empty(address))
        return
    assert market_order and block.timestamp >= o.placed_at + self.expiry, "orders: not owner"
    self._cancel(order_id, o, EXPIRED, True, empty(address))


# ---------------------------------------------------------------- keepers


@external
def execute_orders(order_ids: DynArray[uint256, MAX_BATCH], fee_receiver: address) -> (uint256, uint256):
    """
    @notice Fill, reject or leave pending each order: authorised keepers at any time,
            anyone for orders past their timeout. An order is left pending (no fee) while
            it cannot fill yet: no fresh price newer than it, trigger not met, a trigger
            order's acceptable price not met, Perp paused (for new exposure), or (not a
            keeper) before its timeout. It is cancelled when it cannot fill at all:
            expired, new exposure in a closing or settled market, a decrease in a settled
            market (everything back to the owner); a market order's acceptable price not
            met, or any refusal by Perp (collateral back to the owner, the fee to
            `fee_receiver`).
            Filled orders pay their fee to `fee_receiver`. All credited in the Vault.
    @return (orders executed, orders cancelled).
    """
    return self._execute_batch(order_ids, fee_receiver)


@external
def execute_orders_with_prices(
    markets: DynArray[uint256, MAX_PUSH],
    prices: DynArray[uint256, MAX_PUSH],
    observed_at: uint256,
    order_ids: DynArray[uint256, MAX_BATCH],
    fee_receiver: address,
) -> (uint256, uint256):
    """
    @notice Push prices to the Oracle (as its authorised updater, with every Oracle check)
            and execute orders with them, in one transaction. Authorised keepers only.
    @return (orders executed, orders cancelled).
    """
    assert self.keepers[msg.sender], "orders: not keeper"
    extcall IOraclePush(oracle.address).set_prices(markets, prices, observed_at)
    return self._execute_batch(order_ids, fee_receiver)


@external
def execute_order(order_id: uint256, fee_receiver: address):
    """
    @notice Execute one order, reverting with the reason when it must stay pending (for a
            person at the prompt, or the owner after a keeper outage). A cancellation is
            not a revert: it happens and is logged.
    """
    assert fee_receiver != empty(address), "orders: zero receiver"
    outcome: uint256 = 0
    code: uint256 = 0
    fee: uint256 = 0
    outcome, code, fee = self._execute(order_id, fee_receiver, self.keepers[msg.sender])
    if outcome == PENDING:
        raise self._reason(code)
    if fee != 0:
        self._settle(empty(address), 0, -convert(fee, int256), empty(address), 0, fee_receiver, fee)


# ---------------------------------------------------------------- views


@view
@external
def get_order(order_id: uint256) -> Order:
    """
    @notice An order (all zero when none: never created, filled or cancelled).
    """
    return self._load(order_id)


@view
@external
def order_status(order_id: uint256, as_keeper: bool) -> (uint256, uint256):
    """
    @notice What `execute_orders` would decide now before asking Perp, for a keeper
            (`as_keeper`) or anyone: (PENDING 0 with the reason it waits, EXECUTED 1 when
            it would try to fill (Perp may still refuse it, which cancels it), CANCELLED 2
            with the reason). Keepers use it to pick orders; `reason` names the codes.
    """
    outcome: uint256 = 0
    code: uint256 = 0
    price: uint256 = 0
    outcome, code, price = self._precheck(self._load(order_id), as_keeper)
    return outcome, code


@view
@external
def reason(code: uint256) -> String[40]:
    """
    @notice The name of a reason code in OrderCancelled and `order_status`: 1-16 are Perp's
            refusals (the reasons its direct calls revert with), 32-47 the order book's,
            48 and up the Vault's LP refusals (`Vault.lp_reason`).
    """
    return self._reason(code)


# ---------------------------------------------------------------- admin


@external
def set_keeper(keeper: address, allowed: bool):
    """
    @notice Authorise (or not) a keeper to execute at once and to push prices through
            `execute_orders_with_prices`.
    """
    self._only_admin()
    self.keepers[keeper] = allowed
    log KeeperSet(keeper=keeper, allowed=allowed)


@external
def set_settings(min_execution_fee: uint256, timeout: uint256, expiry: uint256):
    """
    @notice Minimum execution fee (token units, at most $100 worth), timeout (10 s to 1 h)
            and market-order expiry (above the timeout, at most 1 day). Orders already
            placed follow the new times.
    """
    self._only_admin()
    self._set_settings(min_execution_fee, timeout, expiry)


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
    assert msg.sender == self.pending_admin, "orders: not pending admin"
    log AdminTransferred(previous_admin=self.admin, admin=msg.sender)
    self.admin = msg.sender
    self.pending_admin = empty(address)


# ---------------------------------------------------------------- internals


@internal
def _execute_batch(order_ids: DynArray[uint256, MAX_BATCH], fee_receiver: address) -> (uint256, uint256):
    assert fee_receiver != empty(address), "orders: zero receiver"
    is_keeper: bool = self.keepers[msg.sender]
    executed: uint256 = 0
    cancelled: uint256 = 0
    fees: uint256 = 0
    for order_id: uint256 in order_ids:
        outcome: uint256 = 0
        code: uint256 = 0
        fee: uint256 = 0
        outcome, code, fee = self._execute(order_id, fee_receiver, is_keeper)
        if outcome == EXECUTED:
            executed += 1
        elif outcome == CANCELLED:
            cancelled += 1
        fees += fee
    # every fee of the batch in one credit
    if fees != 0:
        self._settle(empty(address), 0, -convert(fees, int256), empty(address), 0, fee_receiver, fees)
    return executed, cancelled


@internal
def _execute(order_id: uint256, fee_receiver: address, is_keeper: bool) -> (uint256, uint256, uint256):
    """
    @dev Decide one order: (outcome, reason code, execution fee now owed to fee_receiver).
    """
    o: Order = self._load(order_id)
    outcome: uint256 = PENDING
    code: uint256 = 0
    price: uint256 = 0
    outcome, code, price = self._precheck(o, is_keeper)
    if outcome == PENDING:
        return PENDING, code, 0
    if outcome == CANCELLED:
        # cancelled by circumstance (expired, the market closed or settled): the owner gets
        # everything back; otherwise the fee pays for the work
        if code == EXPIRED or code == MARKET_SETTLED or code == PERP_MARKET_CLOSING:
            self._cancel(order_id, o, code, True, empty(address))
            return CANCELLED, code, 0
        self._cancel(order_id, o, code, True, fee_receiver)
        return CANCELLED, code, o.execution_fee

    # effects first: the order is gone before Perp (the Vault) is called
    self._orders[order_id] = empty(uint256[3])
    paid: uint256 = 0
    if o.kind == LP_DEPOSIT:
        code, paid = extcall vault.deposit_escrowed(o.owner, o.collateral_delta, o.acceptable_price)
        paid = 0  # shares, not tokens: the Vault's Deposit log has them
    elif o.kind == LP_REDEEM:
        code, paid = extcall vault.redeem_escrowed(o.owner, o.size_delta, o.acceptable_price)
    else:
        code, paid = extcall perp.trade_for(o.owner, o.market, o.is_long, o.kind <= LIMIT_INCREASE, o.collateral_delta, o.size_delta, o.acceptable_price)
    if code != 0:
        # Perp (the Vault) refused, nothing changed there: the escrow back to the owner
        self._refund(order_id, o, code, True, fee_receiver)
        return CANCELLED, code, o.execution_fee
    log OrderExecuted(
        order_id=order_id,
        owner=o.owner,
        market=o.market,
        executor=msg.sender,
        fee_receiver=fee_receiver,
        price=price,
        execution_fee=o.execution_fee,
        amount_credited=paid,
    )
    return EXECUTED, 0, o.execution_fee


@internal
@view
def _precheck(o: Order, is_keeper: bool) -> (uint256, uint256, uint256):
    # everything decided before Perp is asked, in the documented order: (outcome, reason,
    # the price the fill would use)
    if o.owner == empty(address):
        return PENDING, NOT_FOUND, 0
    market_order: bool = self._is_market_order(o.kind)
    if market_order and block.timestamp >= o.placed_at + self.expiry:
        return CANCELLED, EXPIRED, 0
    if not is_keeper and block.timestamp < o.placed_at + self.timeout:
        return PENDING, TOO_EARLY, 0
    if o.kind >= LP_DEPOSIT:
        # the pool value reads every market's price: each must be fresh and newer
        if o.kind == LP_DEPOSIT and staticcall vault.paused():
            return PENDING, VAULT_PAUSED, 0
        waits: uint256 = 0
        why: uint256 = 0
        waits, why = self._lp_prices_wait(o.price_floor)
        return waits, why, 0
    increase: bool = o.kind <= LIMIT_INCREASE
    status: uint256 = staticcall perp.market_status(o.market)
    if increase and o.size_delta != 0:
        # new exposure: never in a closing market; waits out a pause
        if status != ACTIVE:
            return CANCELLED, PERP_MARKET_CLOSING, 0
        if staticcall perp.paused():
            return PENDING, PERP_PAUSED, 0
    elif not increase and status == SETTLED:
        return CANCELLED, MARKET_SETTLED, 0
    if staticcall oracle.is_stale(o.market):
        return PENDING, PRICE_STALE, 0
    if staticcall oracle.price_timestamp(o.market) <= o.price_floor:
        return PENDING, PRICE_NOT_NEWER, 0
    # the price the fill uses: opening longs and closing shorts at the max, else the min
    price: uint256 = staticcall oracle.get_price(o.market, increase == o.is_long)
    if not market_order and not self._trigger_holds(o.kind, o.is_long, price, o.trigger_price):
        return PENDING, TRIGGER_NOT_MET, 0
    # buying (long increase, short decrease) accepts up to the price, selling down to it
    acceptable: bool = price <= o.acceptable_price if increase == o.is_long else price >= o.acceptable_price
    if not acceptable:
        if market_order:
            return CANCELLED, PRICE_NOT_ACCEPTABLE, price
        return PENDING, PRICE_NOT_ACCEPTABLE, price
    return EXECUTED, 0, price


@internal
@view
def _lp_prices_wait(price_floor: uint256) -> (uint256, uint256):
    # (PENDING, why) while a market that is not settled has no fresh price observed after
    # `price_floor`, else (EXECUTED, 0)
    count: uint256 = staticcall IOracleMarkets(oracle.address).market_count()
    for market: uint256 in range(1, MAX_MARKETS + 1):
        if market > count:
            break
        if not staticcall perp.is_market(market) or staticcall perp.market_status(market) == SETTLED:
            continue
        if staticcall oracle.is_stale(market):
            return PENDING, PRICE_STALE
        if staticcall oracle.price_timestamp(market) <= price_floor:
            return PENDING, PRICE_NOT_NEWER
    return EXECUTED, 0


@internal
@view
def _lp_floor() -> uint256:
    # an LP order needs prices observed after it, and after every price already stored, in
    # every market it will read
    newest: uint256 = block.timestamp
    count: uint256 = staticcall IOracleMarkets(oracle.address).market_count()
    for market: uint256 in range(1, MAX_MARKETS + 1):
        if market > count:
            break
        if staticcall perp.is_market(market):
            newest = max(newest, staticcall oracle.price_timestamp(market))
    return newest


@internal
def _store(
    market: uint256,
    kind: uint256,
    is_long: bool,
    collateral_delta: uint256,
    size_delta: uint256,
    acceptable_price: uint256,
    trigger_price: uint256,
    execution_fee: uint256,
    price_floor: uint256,
) -> uint256:
    # record and log a new order of the caller's, placed now (an LP order: market 0, short
    # side, both unused); every field already checked against its bound
    order_id: uint256 = self.next_order_id
    self.next_order_id = order_id + 1
    self._orders[order_id] = [
        convert(msg.sender, uint256)
        | (market << O_MARKET)
        | (kind << O_KIND)
        | (convert(is_long, uint256) << O_LONG)
        | (block.timestamp << O_PLACED)
        | (price_floor << O_FLOOR),
        size_delta | (collateral_delta << W_COLLATERAL),
        acceptable_price | (trigger_price << W_TRIGGER) | (execution_fee << W_FEE),
    ]
    log OrderCreated(
        order_id=order_id,
        owner=msg.sender,
        market=market,
        kind=kind,
        is_long=is_long,
        collateral_delta=collateral_delta,
        size_delta=size_delta,
        acceptable_price=acceptable_price,
        trigger_price=trigger_price,
        execution_fee=execution_fee,
        placed_at=block.timestamp,
        price_floor=price_floor,
    )
    return order_id


@internal
@view
def _check_fee(execution_fee: uint256):
    assert execution_fee >= self.min_execution_fee, "orders: fee below min"
    assert execution_fee <= MAX_FEE, "orders: fee too large"


@internal
@pure
def _is_market_order(kind: uint256) -> bool:
    # filled at the next price or not at all: market orders and LP orders
    return kind == MARKET_INCREASE or kind == MARKET_DECREASE or kind >= LP_DEPOSIT


@internal
@pure
def _trigger_holds(kind: uint256, is_long: bool, price: uint256, trigger: uint256) -> bool:
    # limit and stop-loss longs (take-profit shorts) wait for the price to fall to the
    # trigger; the rest for it to rise to it
    if (kind == TAKE_PROFIT) != is_long:
        return price <= trigger
    return price >= trigger


@internal
@view
def _check_sizes(market: uint256, increase: bool, size_delta: uint256, collateral_delta: uint256):
    assert size_delta <= MAX_SIZE, "orders: size too large"
    assert size_delta != 0 or collateral_delta != 0, "orders: nothing to do"
    if increase and size_delta != 0:
        # new exposure: refused now rather than cancelled later at the owner's cost
        assert not staticcall perp.paused(), "orders: paused"
        assert staticcall perp.market_status(market) == ACTIVE, "orders: market closing"


@internal
@view
def _check_trigger(market: uint256, kind: uint256, is_long: bool, trigger_price: uint256):
    if kind == MARKET_INCREASE or kind == MARKET_DECREASE:
        assert trigger_price == 0, "orders: trigger on market order"
        return
    assert trigger_price != 0, "orders: zero trigger"
    assert trigger_price <= MAX_PRICE, "orders: trigger too large"
    # a trigger already met is on the wrong side (it would fill at once, at the next price)
    if not staticcall oracle.is_stale(market):
        price: uint256 = staticcall oracle.get_price(market, (kind == LIMIT_INCREASE) == is_long)
        assert not self._trigger_holds(kind, is_long, price, trigger_price), "orders: trigger already met"


@internal
@view
def _price_floor(market: uint256) -> uint256:
    # a fill needs a price observed after the order, and after any price already stored
    # (an observation may carry a timestamp slightly ahead of the block)
    return max(block.timestamp, staticcall oracle.price_timestamp(market))


@internal
def _cancel(order_id: uint256, o: Order, code: uint256, credit: bool, fee_receiver: address):
    # the order goes; its escrow goes back to the owner, but for the fee when a
    # fee_receiver earned it
    self._orders[order_id] = empty(uint256[3])
    self._refund(order_id, o, code, credit, fee_receiver)


@internal
def _refund(order_id: uint256, o: Order, code: uint256, credit: bool, fee_receiver: address):
    # the order is already deleted: log, then return the escrow (the fee is paid by the
    # caller's batch credit when fee_receiver is set)
    refund: uint256 = o.collateral_delta if o.kind <= LIMIT_INCREASE or o.kind == LP_DEPOSIT else 0
    shares: uint256 = o.size_delta if o.kind == LP_REDEEM else 0
    fee_paid: uint256 = o.execution_fee
    if fee_receiver == empty(address):
        refund += o.execution_fee
        fee_paid = 0
    log OrderCancelled(
        order_id=order_id,
        owner=o.owner,
        market=o.market,
        canceller=msg.sender,
        reason_code=code,
        reason=self._reason(code),
        refund=refund,
        fee_receiver=fee_receiver,
        fee_paid=fee_paid,
        shares_refund=shares,
    )
    if shares != 0:
        # LP shares are the Vault's ledger: moving them back calls nobody else
        extcall vault.transfer(o.owner, shares)
    if refund == 0:
        return
    if credit:
        self._settle(empty(address), 0, -convert(refund, int256), empty(address), 0, o.owner, refund)
    else:
        self._settle(empty(address), 0, -convert(refund, int256), o.owner, refund, empty(address), 0)


@internal
def _settle(
    account_in: address,
    amount_in: uint256,
    escrow_delta: int256,
    account_out: address,
    amount_out: uint256,
    credit_account: address,
    credit_amount: uint256,
):
    extcall vault.settle(
        settlement.Settlement(
            account_in=account_in,
            amount_in=amount_in,
            pool_delta=0,
            collateral_delta=0,
            escrow_delta=escrow_delta,
            insurance_delta=0,
            account_out=account_out,
            amount_out=amount_out,
            reserved_delta=0,
            credit_account=credit_account,
            credit_amount=credit_amount,
        )
    )


@internal
@view
def _load(order_id: uint256) -> Order:
    words: uint256[3] = self._orders[order_id]
    if words[0] == 0:
        return empty(Order)
    return Order(
        owner=convert(convert(words[0] & ((1 << OWNER_BITS) - 1), uint160), address),
        market=(words[0] >> O_MARKET) & MASK_16,
        kind=(words[0] >> O_KIND) & 255,
        is_long=(words[0] >> O_LONG) & 1 == 1,
        collateral_delta=words[1] >> W_COLLATERAL,
        size_delta=words[1] & MASK_128,
        acceptable_price=words[2] & MASK_96,
        trigger_price=(words[2] >> W_TRIGGER) & MASK_96,
        execution_fee=words[2] >> W_FEE,
        placed_at=(words[0] >> O_PLACED) & MASK_32,
        price_floor=words[0] >> O_FLOOR,
    )


@internal
def _set_settings(min_execution_fee: uint256, timeout: uint256, expiry: uint256):
    assert min_execution_fee * token_scale <= MAX_MIN_FEE_USD, "orders: min fee too large"
    assert timeout >= MIN_TIMEOUT and timeout <= MAX_TIMEOUT, "orders: bad timeout"
    assert expiry > timeout and expiry <= MAX_EXPIRY, "orders: bad expiry"
    self.min_execution_fee = min_execution_fee
    self.timeout = timeout
    self.expiry = expiry
    log SettingsSet(min_execution_fee=min_execution_fee, timeout=timeout, expiry=expiry)


@internal
@view
def _only_admin():
    assert msg.sender == self.admin, "orders: not admin"


@internal
@view
def _reason(code: uint256) -> String[40]:
    # Perp's refusals (its REFUSED_* codes, same order and words), then the order book's
    if code == 1:
        return "perp: unknown market"
    if code == 2:
        return "perp: nothing to do"
    if code == 3:
        return "perp: paused"
    if code == 4:
        return "perp: market closing"
    if code == 5:
        return "perp: zero size"
    if code == 6:
        return "perp: zero collateral"
    if code == 7:
        return "perp: price not acceptable"
    if code == 8:
        return "perp: fees exceed collateral"
    if code == 9:
        return "perp: no position"
    if code == 10:
        return "perp: insufficient collateral"
    if code == 11:
        return "perp: max open interest"
    if code == 12:
        return "perp: reserve exceeded"
    if code == 13:
        return "perp: position too small"
    if code == 14:
        return "perp: collateral below min"
    if code == 15:
        return "perp: leverage too high"
    if code == 16:
        return "perp: would be liquidatable"
    if code == NOT_FOUND:
        return "orders: no order"
    if code == TOO_EARLY:
        return "orders: too early"
    if code == EXPIRED:
        return "orders: expired"
    if code == PRICE_STALE:
        return "orders: price stale"
    if code == PRICE_NOT_NEWER:
        return "orders: price not newer than order"
    if code == TRIGGER_NOT_MET:
        return "orders: trigger not met"
    if code == PRICE_NOT_ACCEPTABLE:
        return "orders: price not acceptable"
    if code == MARKET_SETTLED:
        return "orders: market settled"
    if code == BY_OWNER:
        return "orders: cancelled by owner"
    if code >= VAULT_CODES:
        return staticcall vault.lp_reason(code)
    return "orders: unknown reason"
