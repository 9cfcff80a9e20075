# pragma version 0.4.3
# pragma nonreentrancy on
"""
@title perpool Vault
@notice Holds every token of the protocol and the LP shares (a plain ERC-20).
        Money is kept in recorded buckets, never read from `balanceOf`, so a donation
        changes no share price:
        - pool_amount        LP money, fees credited to LPs, realised trader losses
        - collateral_amount  traders' position collateral
        - escrow_amount      collateral escrowed by pending orders
        - insurance_amount   the insurance fund (not part of LP value)
        - claimable_amount   fees owed to keepers, each claims its own (`claim`)
        LPs `deposit` and `redeem` at the pool value that Perp reports through its
        `pool_value(maximize)` view: directly, or (always, once `lp_orders_only` is set)
        through the OrderBook's LP orders, which fill only at prices observed after the
        request, so nobody can deposit or redeem at a price they know is about to change.
        Authorised protocol contracts (Perp, the OrderBook) move money only through
        `settle`, whose flows must balance, so no controller can create or destroy money,
        and fill LP orders through `deposit_escrowed` / `redeem_escrowed`.
@dev Units: token amounts in the collateral token's decimals (6 to 18); pool values in
     WAD USD, the stablecoin valued at $1; LP shares have 18 decimals and the first share
     is worth $1. Rounding favours the pool: shares minted and amounts paid round down,
     fees round up.
@custom:security One reentrancy lock covers every state-changing function. `pool_amount`
     is the only view readable while the lock is held, because Perp's `pool_value` reads
     it during `deposit`/`redeem`: once before the Vault writes anything (the price) and
     once after its writes, before the token moves (the share-price check).
     Buckets are packed two to a slot (pool | collateral, insurance | reserved,
     escrow | claimable), 128 bits
     each; `settle` and deposits revert "vault: bucket overflow" beyond that.
@custom:kill Set no controller (`set_controller(perp, False)`, and the OrderBook's): trading
     and order fills stop settling, while LPs can still redeem what is not reserved (turn
     `lp_orders_only` off first: LP orders need the OrderBook as a controller).
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed
from contracts.interfaces import IPoolValue
from contracts.lib import math  # stateless helpers: no `initializes` needed
from contracts.lib import settlement

implements: IERC20

# ---------------------------------------------------------------- constants

BPS: constant(uint256) = 10_000
WAD_DECIMALS: constant(uint256) = 18
MIN_TOKEN_DECIMALS: constant(uint256) = 6
MAX_FEE_BPS: constant(uint256) = 100  # 1 % mint or burn fee at most
MAX_COOLDOWN: constant(uint256) = 172_800  # s = 2 days
DEFAULT_COOLDOWN: constant(uint256) = 900  # s = 15 min, as GMX v1
DEAD_SHARES: constant(uint256) = 10**15  # locked forever by the first deposit ($0.001)
MIN_FIRST_DEPOSIT: constant(uint256) = 10**18  # WAD USD: $1
DEAD_ADDRESS: constant(address) = 0x000000000000000000000000000000000000dEaD
HALF: constant(uint256) = 128  # buckets are packed two to a slot, 128 bits each
MASK_128: constant(uint256) = 2**128 - 1
# the LP flags word
PAUSED_BIT: constant(uint256) = 1  # deposits refused
ORDERS_ONLY_BIT: constant(uint256) = 2  # direct deposit and redeem refused: LP orders only

# why an LP flow is refused: the codes `deposit_escrowed` / `redeem_escrowed` return (the
# OrderBook names them with the same words the direct calls revert with, `lp_reason`)
LP_PAUSED: constant(uint256) = 48
LP_FIRST_DEPOSIT_TOO_SMALL: constant(uint256) = 49
LP_POOL_VALUE_ZERO: constant(uint256) = 50
LP_ZERO_SHARES: constant(uint256) = 51
LP_SLIPPAGE: constant(uint256) = 52
LP_DILUTES: constant(uint256) = 53
LP_ZERO_AMOUNT: constant(uint256) = 54
LP_RESERVED: constant(uint256) = 55
LP_BEYOND_SHARE: constant(uint256) = 56

# ---------------------------------------------------------------- immutables

token: public(immutable(address))  # the collateral token (a USD stablecoin)
token_scale: public(immutable(uint256))  # WAD per token unit: 10**(18 - decimals)

# ---------------------------------------------------------------- structs


# ---------------------------------------------------------------- storage

# LP shares (ERC-20)
name: public(String[32])
symbol: public(String[8])
decimals: public(constant(uint8)) = 18
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])

# recorded buckets, token units, hand-packed in pairs that change together (see constants)
_pool_collateral: uint256  # pool_amount | collateral_amount
_insurance_reserved: uint256  # insurance_amount | reserved_amount
_escrow_claimable: uint256  # escrow_amount | claimable_amount
claimable: public(HashMap[address, uint256])  # token units each account may `claim`

# roles and settings
admin: public(address)
pending_admin: public(address)
controllers: public(HashMap[address, bool])  # protocol contracts allowed to settle
pool_value_source: public(address)  # Perp; empty: the pool value is the pool amount
mint_fee_bps: public(uint256)
burn_fee_bps: public(uint256)
cooldown: public(uint256)  # s between an account's deposit and its redeem or transfer
last_deposit_at: public(HashMap[address, uint256])  # s
# receiver => depositor => may deposit for the receiver (and so start its cooldown)
depositor_approved: public(HashMap[address, HashMap[address, bool]])
pauser: public(address)  # may pause deposits (the Configurator), besides the admin
_lp_flags: uint256  # PAUSED_BIT | ORDERS_ONLY_BIT (one slot: a deposit reads both)
insurance_target: public(uint256)  # token units the insurance fund keeps before withdrawals

# ---------------------------------------------------------------- events

event Deposit:
    sender: indexed(address)
    receiver: indexed(address)
    amount: uint256  # token units paid in
    fee: uint256  # token units kept by the pool
    shares: uint256

event Redeem:
    sender: indexed(address)
    receiver: indexed(address)
    shares: uint256
    amount: uint256  # token units paid out
    fee: uint256  # token units kept by the pool

event Settled:
    # the deltas sum to amount_in - amount_out - credited; who pulls and pays, and how much,
    # shows in the token's Transfer logs (not repeated here: every trade pays for this event).
    # Two 128-bit values per word, low half first (the deltas as int128 two's complement):
    # three data words, not six. perpool.events.settled decodes it.
    controller: indexed(address)
    pool_collateral: uint256  # pool_delta | collateral_delta << 128
    escrow_insurance: uint256  # escrow_delta | insurance_delta << 128
    reserved_credited: uint256  # reserved_delta | credited << 128 (credited: token units owed to the credit account)

event DepositorApproved:
    receiver: indexed(address)
    depositor: indexed(address)
    approved: bool

event InsuranceFunded:
    sender: indexed(address)
    amount: uint256

event Claimed:
    account: indexed(address)
    receiver: indexed(address)
    amount: uint256

event InsuranceWithdrawn:
    receiver: indexed(address)
    amount: uint256

event InsuranceTargetSet:
    target: uint256

event PauserSet:
    pauser: indexed(address)

event PausedSet:
    account: indexed(address)
    paused: bool

event LpOrdersOnlySet:
    enabled: bool

event ControllerSet:
    controller: indexed(address)
    allowed: bool

event PoolValueSourceSet:
    source: indexed(address)

event FeesSet:
    mint_fee_bps: uint256
    burn_fee_bps: uint256

event CooldownSet:
    cooldown: uint256

event AdminTransferStarted:
    admin: indexed(address)
    pending_admin: indexed(address)

event AdminTransferred:
    previous_admin: indexed(address)
    admin: indexed(address)


@deploy
def __init__(token_: address, name_: String[32], symbol_: String[8]):
    """
    @param token_ The collateral token: a USD stablecoin with 6 to 18 decimals.
    @param name_ The LP share's name.
    @param symbol_ The LP share's symbol.
    """
    token_decimals: uint256 = convert(staticcall IERC20Detailed(token_).decimals(), uint256)
    assert token_decimals >= MIN_TOKEN_DECIMALS and token_decimals <= WAD_DECIMALS, "vault: bad token decimals"
    token = token_
    token_scale = 10 ** (WAD_DECIMALS - token_decimals)
    self.name = name_
    self.symbol = symbol_
    self.admin = msg.sender
    self.cooldown = DEFAULT_COOLDOWN
    log AdminTransferred(previous_admin=empty(address), admin=msg.sender)
    log CooldownSet(cooldown=DEFAULT_COOLDOWN)


# ---------------------------------------------------------------- LPs


@external
def deposit(amount: uint256, min_shares: uint256, receiver: address) -> uint256:
    """
    @notice Deposit `amount` tokens into the pool for LP shares priced at the pool's max
            value (so fewer shares). The mint fee stays in the pool for existing LPs.
            Starts the receiver's cooldown, so depositing for another receiver needs its
            approval (`approve_depositor`): nobody can lock an LP's shares with dust.
            Refused while paused ("vault: paused"); redemptions never are. Refused
            ("vault: LP orders only") once `lp_orders_only` is set: deposits then go
            through the OrderBook (`create_deposit_order`). Refused ("vault: deposit would
            dilute") if the deposit would lower the share price, which happens only while
            traders' net profit is over Perp's `max_pnl_factor_bps` of the pool: the
            counted liability then grows with the pool amount.
    @param amount Token units, pulled from the caller (approve the Vault first).
    @param min_shares Revert "vault: slippage" below this many shares.
    @param receiver Who gets the shares.
    @return The shares minted.
    """
    assert amount != 0, "vault: zero amount"
    assert receiver != empty(address), "vault: zero receiver"
    flags: uint256 = self._lp_flags
    assert flags & PAUSED_BIT == 0, "vault: paused"
    assert flags & ORDERS_ONLY_BIT == 0, "vault: LP orders only"
    assert receiver == msg.sender or self.depositor_approved[receiver][msg.sender], "vault: depositor not approved"
    code: uint256 = 0
    shares: uint256 = 0
    code, shares = self._deposit(msg.sender, amount, min_shares, receiver, False)
    if code != 0:
        raise self._lp_reason(code)
    self._pull(msg.sender, amount)
    return shares


@external
def redeem(shares: uint256, min_amount: uint256, receiver: address) -> uint256:
    """
    @notice Burn `shares` for tokens priced at the pool's min value (so less paid out),
            less the burn fee, which stays in the pool. Refused during the caller's
            cooldown, when it would take the pool below the reserved amount, once
            `lp_orders_only` is set ("vault: LP orders only": redeem through the
            OrderBook's `create_redeem_order`), and ("vault: redeem beyond its share") when
            it would raise the remaining LPs' share price by more than its fee and
            rounding, which happens only while traders' net profit is over the pnl cap
            (the redeemer would leave with a share of a value that ignores the profit
            above the cap).
    @param shares LP shares of the caller to burn.
    @param min_amount Revert "vault: slippage" below this many tokens paid.
    @param receiver Who gets the tokens.
    @return Token units paid.
    """
    assert shares != 0, "vault: zero shares"
    assert receiver != empty(address), "vault: zero receiver"
    assert self._lp_flags & ORDERS_ONLY_BIT == 0, "vault: LP orders only"
    self._check_cooldown(msg.sender)
    assert shares <= self.balanceOf[msg.sender], "vault: insufficient shares"
    code: uint256 = 0
    amount: uint256 = 0
    code, amount = self._redeem(msg.sender, shares, min_amount, receiver, False)
    if code != 0:
        raise self._lp_reason(code)
    self._push(receiver, amount)
    return amount


@external
def claim(receiver: address) -> uint256:
    """
    @notice Pay the caller everything it is owed (credited by `settle`: keeper fees,
            order payouts and refunds) to `receiver`. Never paused.
    @return Token units paid.
    """
    assert receiver != empty(address), "vault: zero receiver"
    amount: uint256 = self.claimable[msg.sender]
    assert amount != 0, "vault: nothing to claim"
    self.claimable[msg.sender] = 0
    self._escrow_claimable -= amount << HALF  # the claimable total is the high half
    log Claimed(account=msg.sender, receiver=receiver, amount=amount)
    self._push(receiver, amount)
    return amount


@external
def fund_insurance(amount: uint256):
    """
    @notice Add `amount` tokens of the caller's to the insurance fund.
    """
    assert amount != 0, "vault: zero amount"
    packed: uint256 = self._insurance_reserved
    self._insurance_reserved = self._apply(packed & MASK_128, convert(amount, int256)) | (packed & (MASK_128 << HALF))
    log InsuranceFunded(sender=msg.sender, amount=amount)
    self._pull(msg.sender, amount)


# ---------------------------------------------------------------- controllers


@external
def settle(s: settlement.Settlement):
    """
    @notice Move money for a protocol contract in one balanced step: pull `amount_in`
            from `account_in`, change the buckets, pay `amount_out` to `account_out`, credit
            `credit_amount` to `credit_account` (claimable later: a keeper's fee or an
            order's payout, paid without handing anyone control), and move the reserved
            amount. The bucket deltas
            must add up to amount_in - amount_out - credit_amount, so money is conserved;
            no bucket may go below zero. The reserved amount moves by `reserved_delta`.
    @dev Only an authorised controller. Reads nothing from Perp, so a locked Perp can call it.
    """
    assert self.controllers[msg.sender], "vault: not controller"
    flow: int256 = convert(s.amount_in, int256) - convert(s.amount_out, int256)
    flow -= convert(s.credit_amount, int256)
    assert s.pool_delta + s.collateral_delta + s.escrow_delta + s.insurance_delta == flow, "vault: unbalanced settlement"
    assert s.credit_amount == 0 or s.credit_account != empty(address), "vault: zero account"
    assert s.amount_in == 0 or s.account_in != empty(address), "vault: zero account"
    assert s.amount_out == 0 or s.account_out != empty(address), "vault: zero account"

    if s.pool_delta != 0 or s.collateral_delta != 0:
        packed: uint256 = self._pool_collateral
        self._pool_collateral = self._apply(packed & MASK_128, s.pool_delta) | (self._apply(packed >> HALF, s.collateral_delta) << HALF)
    if s.escrow_delta != 0 or s.credit_amount != 0:
        self._book_escrow_credit(s.escrow_delta, s.credit_account, s.credit_amount)
    old: uint256 = self._insurance_reserved
    new: uint256 = self._apply(old & MASK_128, s.insurance_delta) | (self._apply(old >> HALF, s.reserved_delta) << HALF)
    if new != old:
        self._insurance_reserved = new
    # each delta as a 128-bit two's complement half (`convert` to int128 reverts beyond its
    # range: no bucket of at most 2**128 - 1 units moves that much in practice); the credit
    # is at most the claimable bucket, so it fits 128 bits unsigned
    log Settled(
        controller=msg.sender,
        pool_collateral=(convert(convert(convert(s.pool_delta, int128), bytes32), uint256) & MASK_128)
        | (convert(convert(convert(s.collateral_delta, int128), bytes32), uint256) << HALF),
        escrow_insurance=(convert(convert(convert(s.escrow_delta, int128), bytes32), uint256) & MASK_128)
        | (convert(convert(convert(s.insurance_delta, int128), bytes32), uint256) << HALF),
        reserved_credited=(convert(convert(convert(s.reserved_delta, int128), bytes32), uint256) & MASK_128)
        | (s.credit_amount << HALF),
    )

    if s.amount_in != 0:
        self._pull(s.account_in, s.amount_in)
    if s.amount_out != 0:
        self._push(s.account_out, s.amount_out)


@external
def deposit_escrowed(owner: address, amount: uint256, min_shares: uint256) -> (uint256, uint256):
    """
    @notice Fill an LP deposit order: `amount` token units already in the escrow bucket
            (escrowed by the order) join the pool for shares minted to `owner`, priced and
            checked exactly as `deposit` (max pool value, mint fee, first-deposit minimum,
            slippage, no dilution), and starting `owner`'s cooldown. Controllers only (the
            OrderBook, which fills it only at prices observed after the order).
    @dev Returns a refusal instead of reverting, nothing changed, so an order batch never
         depends on catching a revert: (0, shares) or (an LP_* code, 0); `lp_reason`
         names the codes.
    """
    assert self.controllers[msg.sender], "vault: not controller"
    if self._lp_flags & PAUSED_BIT != 0:
        return LP_PAUSED, 0
    return self._deposit(owner, amount, min_shares, owner, True)


@external
def redeem_escrowed(owner: address, shares: uint256, min_amount: uint256) -> (uint256, uint256):
    """
    @notice Fill an LP redeem order: burn `shares` held by the caller (taken from `owner`
            by `take_shares` when the order was placed) and credit `owner` the tokens
            (`claim` pays them), priced and checked exactly as `redeem` (min pool value,
            burn fee, slippage, reserved amount, no more than its share). Controllers only.
    @dev Returns a refusal instead of reverting, nothing changed: (0, token units
         credited) or (an LP_* code, 0). The caller keeps the shares on a refusal.
    """
    assert self.controllers[msg.sender], "vault: not controller"
    assert shares <= self.balanceOf[msg.sender], "vault: insufficient shares"
    return self._redeem(msg.sender, shares, min_amount, owner, True)


@external
def take_shares(owner: address, shares: uint256):
    """
    @notice Move `shares` of `owner`'s to the caller, the escrow of an LP redeem order;
            refused during `owner`'s cooldown and beyond its balance, as a transfer would
            be. Controllers only (the OrderBook, for the owner who places the order).
    """
    assert self.controllers[msg.sender], "vault: not controller"
    self._transfer(owner, msg.sender, shares)


# ---------------------------------------------------------------- views


@reentrant
@view
@external
def pool_amount() -> uint256:
    """
    @notice LP money in the pool, token units. Readable while the Vault's lock is held:
            Perp's `pool_value` reads it during `deposit` and `redeem`.
    """
    return self._pool_collateral & MASK_128


@view
@external
def collateral_amount() -> uint256:
    """
    @notice Traders' position collateral, token units.
    """
    return self._pool_collateral >> HALF


@view
@external
def insurance_amount() -> uint256:
    """
    @notice The insurance fund, token units (not part of LP value).
    """
    return self._insurance_reserved & MASK_128


@view
@external
def reserved_amount() -> uint256:
    """
    @notice Σ open size × reserve factor, token units, kept current by Perp. A redeem may
            not take the pool amount below it.
    """
    return self._insurance_reserved >> HALF


@view
@external
def pool_value(maximize: bool) -> uint256:
    """
    @notice The pool value the Vault prices shares with, WAD USD (see IPoolValue).
    """
    return self._pool_value(maximize)


@view
@external
def share_price(maximize: bool) -> uint256:
    """
    @notice WAD USD per whole LP share (1e18 before the first deposit), rounded down.
    """
    supply: uint256 = self.totalSupply
    if supply == 0:
        return 10**WAD_DECIMALS
    return math.mul_div(self._pool_value(maximize), 10**WAD_DECIMALS, supply, False)


@view
@external
def escrow_amount() -> uint256:
    """
    @notice Collateral escrowed by pending orders, token units.
    """
    return self._escrow_claimable & MASK_128


@view
@external
def claimable_amount() -> uint256:
    """
    @notice Fees owed to keepers and not yet claimed, token units (Σ `claimable`).
    """
    return self._escrow_claimable >> HALF


@view
@external
def total_owed() -> uint256:
    """
    @notice Everything the Vault owes: pool + collateral + escrow + insurance + claimable,
            token units.
    """
    return self._total_owed()


@view
@external
def is_solvent() -> bool:
    """
    @notice True when the Vault's token balance covers everything it owes.
    """
    return staticcall IERC20(token).balanceOf(self) >= self._total_owed()


@view
@external
def paused() -> bool:
    """
    @notice True while LP deposits are refused (direct and by order); redemptions never are.
    """
    return self._lp_flags & PAUSED_BIT != 0


@view
@external
def lp_orders_only() -> bool:
    """
    @notice True when LPs deposit and redeem only through the OrderBook's LP orders
            (filled at a price observed after the request); direct calls revert "vault: LP
            orders only".
    """
    return self._lp_flags & ORDERS_ONLY_BIT != 0


@pure
@external
def lp_reason(code: uint256) -> String[40]:
    """
    @notice The words of an LP refusal code returned by `deposit_escrowed` and
            `redeem_escrowed`: the reasons the direct `deposit` and `redeem` revert with.
    """
    return self._lp_reason(code)


# ---------------------------------------------------------------- LP share ERC-20


@external
def transfer(receiver: address, amount: uint256) -> bool:
    """
    @notice ERC-20 transfer of LP shares; refused while the sender is in cooldown.
    """
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(owner: address, receiver: address, amount: uint256) -> bool:
    """
    @notice ERC-20 transferFrom of LP shares; refused while the owner is in cooldown.
    """
    allowed: uint256 = self.allowance[owner][msg.sender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "vault: insufficient allowance"
        self.allowance[owner][msg.sender] = allowed - amount
    self._transfer(owner, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @notice ERC-20 approve of LP shares.
    """
    self.allowance[msg.sender][spender] = amount
    log IERC20.Approval(owner=msg.sender, spender=spender, value=amount)
    return True


# ---------------------------------------------------------------- admin


@external
def approve_depositor(depositor: address, approved: bool):
    """
    @notice Let `depositor` deposit with the caller as receiver (which starts the caller's
            cooldown), or stop it. For routers and zaps acting on an LP's behalf.
    """
    self.depositor_approved[msg.sender][depositor] = approved
    log DepositorApproved(receiver=msg.sender, depositor=depositor, approved=approved)


@external
def withdraw_insurance(amount: uint256, receiver: address):
    """
    @notice Take `amount` tokens out of the insurance fund, only what exceeds
            `insurance_target`. Admin only.
    """
    self._only_admin()
    assert amount != 0, "vault: zero amount"
    assert receiver != empty(address), "vault: zero receiver"
    packed: uint256 = self._insurance_reserved
    fund: uint256 = packed & MASK_128
    assert amount <= fund and fund - amount >= self.insurance_target, "vault: insurance below target"
    self._insurance_reserved = packed - amount  # the fund is the low half: no borrow
    log InsuranceWithdrawn(receiver=receiver, amount=amount)
    self._push(receiver, amount)


@external
def set_insurance_target(target: uint256):
    """
    @notice The insurance fund size (token units) below which nothing can be withdrawn.
    """
    self._only_admin()
    self.insurance_target = target
    log InsuranceTargetSet(target=target)


@external
def set_pauser(pauser: address):
    """
    @notice The account (the Configurator) that may pause deposits besides the admin.
    """
    self._only_admin()
    self.pauser = pauser
    log PauserSet(pauser=pauser)


@external
def set_paused(paused: bool):
    """
    @notice Refuse (or accept again) LP deposits; admin or pauser. Redemptions, trading
            settlements and insurance top-ups are never paused.
    """
    assert msg.sender == self.admin or msg.sender == self.pauser, "vault: not pauser"
    flags: uint256 = self._lp_flags & ~PAUSED_BIT
    self._lp_flags = flags | PAUSED_BIT if paused else flags
    log PausedSet(account=msg.sender, paused=paused)


@external
def set_lp_orders_only(enabled: bool):
    """
    @notice Accept LP deposits and redeems only through the OrderBook's LP orders
            (`enabled`), or directly too. Admin only. With it on, nobody can deposit ahead
            of a price push they know of and redeem after it (or the reverse).
    """
    self._only_admin()
    flags: uint256 = self._lp_flags & ~ORDERS_ONLY_BIT
    self._lp_flags = flags | ORDERS_ONLY_BIT if enabled else flags
    log LpOrdersOnlySet(enabled=enabled)


@external
def set_controller(controller: address, allowed: bool):
    """
    @notice Authorise (or remove) a protocol contract that may call `settle`.
    """
    self._only_admin()
    assert controller != empty(address), "vault: zero address"
    self.controllers[controller] = allowed
    log ControllerSet(controller=controller, allowed=allowed)


@external
def set_pool_value_source(source: address):
    """
    @notice Set the contract whose `pool_value(maximize)` prices LP shares (Perp).
            The empty address prices them at the recorded pool amount.
    """
    self._only_admin()
    self.pool_value_source = source
    log PoolValueSourceSet(source=source)


@external
def set_fees(mint_fee_bps: uint256, burn_fee_bps: uint256):
    """
    @notice Set the mint and burn fees, each at most MAX_FEE_BPS.
    """
    self._only_admin()
    assert mint_fee_bps <= MAX_FEE_BPS and burn_fee_bps <= MAX_FEE_BPS, "vault: fee too high"
    self.mint_fee_bps = mint_fee_bps
    self.burn_fee_bps = burn_fee_bps
    log FeesSet(mint_fee_bps=mint_fee_bps, burn_fee_bps=burn_fee_bps)


@external
def set_cooldown(cooldown: uint256):
    """
    @notice Set the cooldown between an account's deposit and its redeem or share
            transfer, at most MAX_COOLDOWN seconds.
    """
    self._only_admin()
    assert cooldown <= MAX_COOLDOWN, "vault: cooldown too long"
    self.cooldown = cooldown
    log CooldownSet(cooldown=cooldown)


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
    assert msg.sender == self.pending_admin, "vault: not pending admin"
    log AdminTransferred(previous_admin=self.admin, admin=msg.sender)
    self.admin = msg.sender
    self.pending_admin = empty(address)


# ---------------------------------------------------------------- internals


@internal
def _deposit(payer: address, amount: uint256, min_shares: uint256, receiver: address, escrowed: bool) -> (uint256, uint256):
    # price, mint and book a deposit of `amount` (pulled from `payer` by the caller after
    # this, or already in escrow): (0, shares), or (a refusal code, 0) with nothing changed
    fee: uint256 = math.bps_of(amount, self.mint_fee_bps, True)  # fee rounds up
    net_wad: uint256 = (amount - fee) * token_scale
    supply: uint256 = self.totalSupply
    shares: uint256 = 0
    value: uint256 = 0
    if supply == 0:
        if net_wad < MIN_FIRST_DEPOSIT:
            return LP_FIRST_DEPOSIT_TOO_SMALL, 0
        shares = net_wad - DEAD_SHARES
    else:
        value = self._pool_value(True)
        if value == 0:
            return LP_POOL_VALUE_ZERO, 0
        shares = math.mul_div(net_wad, supply, value, False)  # shares round down
    if shares == 0:
        return LP_ZERO_SHARES, 0
    if shares < min_shares:
        return LP_SLIPPAGE, 0

    packed: uint256 = self._pool_collateral
    self._add_pool(amount)
    if supply != 0:
        # the share price may not fall: value after x supply before >= value x supply after
        # (exact without the pnl cap; while it binds, the cap grows with the pool amount)
        after: uint256 = self._pool_value(True)
        if after * supply < value * (supply + shares):
            self._pool_collateral = packed
            return LP_DILUTES, 0
    if escrowed:
        self._book_escrow_credit(-convert(amount, int256), empty(address), 0)
    if supply == 0:
        self._mint(DEAD_ADDRESS, DEAD_SHARES)
    self.last_deposit_at[receiver] = block.timestamp
    self._mint(receiver, shares)
    log Deposit(sender=payer, receiver=receiver, amount=amount, fee=fee, shares=shares)
    return 0, shares


@internal
def _redeem(holder: address, shares: uint256, min_amount: uint256, receiver: address, credit: bool) -> (uint256, uint256):
    # price and book the burn of `holder`'s `shares`: the amount is paid to `receiver` by
    # the caller after this (a direct redeem) or, with `credit` (an order's, the holder
    # being the OrderBook), credited to it. (0, amount), or (a refusal code, 0) with
    # nothing changed
    value: uint256 = self._pool_value(False)
    supply: uint256 = self.totalSupply
    # amounts paid round down, twice: shares -> WAD, WAD -> token units
    gross: uint256 = math.mul_div(shares, value, supply, False) // token_scale
    fee: uint256 = math.bps_of(gross, self.burn_fee_bps, True)  # fee rounds up
    amount: uint256 = gross - fee
    if amount == 0:
        return LP_ZERO_AMOUNT, 0
    if amount < min_amount:
        return LP_SLIPPAGE, 0
    packed: uint256 = self._pool_collateral
    pool: uint256 = packed & MASK_128
    if amount > pool or pool - amount < self._insurance_reserved >> HALF:
        return LP_RESERVED, 0

    self._pool_collateral = packed - amount  # the pool is the low half: no borrow
    # the remaining share price may rise by the fee and the rounding of `gross` only:
    # (value after x supply before - value x supply after) <= supply x (fee + 1) x scale
    # (exact without the pnl cap; while it binds, the cap shrinks with the pool amount)
    after: uint256 = self._pool_value(False)
    if after * supply > value * (supply - shares) + supply * (fee + 1) * token_scale:
        self._pool_collateral = packed
        return LP_BEYOND_SHARE, 0
    self._burn(holder, shares)
    if credit:
        # an order's redeem: the tokens stay in the Vault, owed to the LP (`claim`)
        self._book_escrow_credit(0, receiver, amount)
    log Redeem(sender=receiver if credit else holder, receiver=receiver, shares=shares, amount=amount, fee=fee)
    return 0, amount


@internal
@pure
def _lp_reason(code: uint256) -> String[40]:
    if code == LP_PAUSED:
        return "vault: paused"
    if code == LP_FIRST_DEPOSIT_TOO_SMALL:
        return "vault: first deposit too small"
    if code == LP_POOL_VALUE_ZERO:
        return "vault: pool value zero"
    if code == LP_ZERO_SHARES:
        return "vault: zero shares"
    if code == LP_SLIPPAGE:
        return "vault: slippage"
    if code == LP_DILUTES:
        return "vault: deposit would dilute"
    if code == LP_ZERO_AMOUNT:
        return "vault: zero amount"
    if code == LP_RESERVED:
        return "vault: reserved"
    if code == LP_BEYOND_SHARE:
        return "vault: redeem beyond its share"
    return "vault: unknown reason"


@internal
def _only_admin():
    assert msg.sender == self.admin, "vault: not admin"


@internal
@view
def _pool_value(maximize: bool) -> uint256:
    source: address = self.pool_value_source
    if source == empty(address):
        return (self._pool_collateral & MASK_128) * token_scale
    return staticcall IPoolValue(source).pool_value(maximize)


@internal
@view
def _total_owed() -> uint256:
    pc: uint256 = self._pool_collateral
    ec: uint256 = self._escrow_claimable
    return (pc & MASK_128) + (pc >> HALF) + (ec & MASK_128) + (ec >> HALF) + (self._insurance_reserved & MASK_128)


@internal
@view
def _check_cooldown(account: address):
    assert block.timestamp >= self.last_deposit_at[account] + self.cooldown, "vault: cooldown"


@internal
@pure
def _apply(bucket: uint256, delta: int256) -> uint256:
    if delta >= 0:
        added: uint256 = bucket + convert(delta, uint256)
        assert added <= MASK_128, "vault: bucket overflow"
        return added
    taken: uint256 = convert(-delta, uint256)
    assert taken <= bucket, "vault: bucket underflow"
    return bucket - taken


@internal
def _book_escrow_credit(escrow_delta: int256, credit_account: address, credit_amount: uint256):
    # the escrow bucket moves by `escrow_delta`; `credit_amount` is owed to `credit_account`,
    # added to both its `claimable` and the claimable total (the high half is Σ claimable)
    ec: uint256 = self._escrow_claimable
    self._escrow_claimable = self._apply(ec & MASK_128, escrow_delta) | (self._apply(ec >> HALF, convert(credit_amount, int256)) << HALF)
    if credit_amount != 0:
        self.claimable[credit_account] += credit_amount


@internal
def _add_pool(amount: uint256):
    packed: uint256 = self._pool_collateral
    self._pool_collateral = self._apply(packed & MASK_128, convert(amount, int256)) | (packed & (MASK_128 << HALF))


@internal
def _mint(receiver: address, shares: uint256):
    self.totalSupply += shares
    self.balanceOf[receiver] += shares
    log IERC20.Transfer(sender=empty(address), receiver=receiver, value=shares)


@internal
def _burn(owner: address, shares: uint256):
    self.balanceOf[owner] -= shares
    self.totalSupply -= shares
    log IERC20.Transfer(sender=owner, receiver=empty(address), value=shares)


@internal
def _transfer(owner: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "vault: zero receiver"
    self._check_cooldown(owner)
    assert self.balanceOf[owner] >= amount, "vault: insufficient shares"
    self.balanceOf[owner] -= amount
    self.balanceOf[receiver] += amount
    log IERC20.Transfer(sender=owner, receiver=receiver, value=amount)


@internal
def _pull(account: address, amount: uint256):
    # tolerates tokens that return nothing; reverts on `false`. Solvency, checked inductively:
    # the buckets change only by balanced flows, so if every transfer moves the balance by
    # exactly what was booked, balance - total owed never falls (a fee-on-transfer token, or
    # one whose fee switch turns on, is refused here)
    before: uint256 = staticcall IERC20(token).balanceOf(self)
    assert extcall IERC20(token).transferFrom(account, self, amount, default_return_value=True), "vault: transfer failed"
    assert staticcall IERC20(token).balanceOf(self) >= before + amount, "vault: insolvent"


@internal
def _push(account: address, amount: uint256):
    before: uint256 = staticcall IERC20(token).balanceOf(self)
    assert extcall IERC20(token).transfer(account, amount, default_return_value=True), "vault: transfer failed"
    assert staticcall IERC20(token).balanceOf(self) + amount >= before, "vault: insolvent"
