# pragma version 0.4.3
"""
@title Test-only pool value source
@notice Stands in for Perp in Vault tests: reports the Vault's recorded pool amount (in WAD)
        plus a settable signed offset, so tests can put the pool value above and below it,
        less a settable trader profit capped at `cap_bps` of the pool amount, as Perp's
        pnl cap. Reads the Vault's `pool_amount` mid-deposit, as Perp does.
"""

interface IVaultView:
    def pool_amount() -> uint256: view

vault: public(address)
scale: public(uint256)  # WAD per token unit
offset_max: public(int256)  # WAD added for maximize=True
offset_min: public(int256)  # WAD added for maximize=False
profit: public(uint256)  # WAD of trader profit counted against the pool, capped
cap_bps: public(uint256)  # the cap, in bps of the pool amount (0: no profit counted)


@deploy
def __init__(vault_: address, token_decimals: uint256):
    self.vault = vault_
    self.scale = 10 ** (18 - token_decimals)


@external
def set_offsets(offset_max_: int256, offset_min_: int256):
    self.offset_max = offset_max_
    self.offset_min = offset_min_


@external
def set_capped_profit(profit_: uint256, cap_bps_: uint256):
    self.profit = profit_
    self.cap_bps = cap_bps_


@view
@external
def pool_value(maximize: bool) -> uint256:
    base: int256 = convert(staticcall IVaultView(self.vault).pool_amount() * self.scale, int256)
    value: int256 = base + (self.offset_max if maximize else self.offset_min)
    value -= convert(min(self.profit, convert(base, uint256) * self.cap_bps // 10_000), int256)
    if value < 0:
        return 0
    return convert(value, uint256)
