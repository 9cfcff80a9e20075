"""Claiming the keeper fees the Vault credits: liquidation fees (Perp) and order execution
fees (OrderBook) both land in `Vault.claimable(keeper)`; one `Vault.claim` pays them all.
Shared by the liquidator and the order keeper (in `all` both run it: whichever looks first
claims everything, the other finds nothing)."""

from __future__ import annotations

from keepers.chain import Chain
from keepers.decide.liquidation import WAD
from keepers.metrics import Metrics

#: Claim the fees credited in the Vault once they are worth this much (WAD USD): one token
#: transfer per claim, so not after every liquidation or order.
CLAIM_THRESHOLD_USD = 50 * WAD
CLAIM_EVERY_TICKS = 30  # how often the claimable balance is read


def claim_fees(chain: Chain, metrics: Metrics, account: str, token_scale: int, threshold_usd: int) -> int:
    """Claim what the Vault credits `account` (to itself) once it is worth at least
    `threshold_usd`; return the token units claimed. Gauges `fees_claimable`, counts
    `fees_claimed`."""
    vault = chain.vault
    amount = int(chain.call(vault.functions.claimable(account)))
    metrics.set("fees_claimable", amount)
    if amount == 0 or amount * token_scale < threshold_usd:
        return 0
    sent = chain.send(vault.functions.claim(account), "claim", amount=amount)
    if sent.status != 1:
        return 0
    metrics.inc("fees_claimed", amount)
    metrics.set("fees_claimable", 0)
    return amount
