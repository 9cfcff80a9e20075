# pragma version 0.4.3
"""
@title perpool settlement
@notice The one money-moving request protocol contracts (Perp, OrderBook) send the Vault:
        `Vault.settle` pulls, moves its buckets, pays and credits in one balanced step.
        Token units throughout.
"""

struct Settlement:
    account_in: address  # pays `amount_in` (approved to the Vault)
    amount_in: uint256  # token units pulled in
    pool_delta: int256  # token units added to (or taken from) each bucket
    collateral_delta: int256
    escrow_delta: int256
    insurance_delta: int256
    account_out: address  # receives `amount_out`
    amount_out: uint256  # token units paid out
    reserved_delta: int256  # change of the reserved amount, token units
    credit_account: address  # is owed `credit_amount`, to `claim` later (a keeper's fee, an order's payout or refund)
    credit_amount: uint256  # token units
