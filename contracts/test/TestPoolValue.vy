# pragma version 0.4.3
"""
@title Test-only pool value source
@notice Stands in for Perp in Vault tests: reports the Vault's recorded pool amount (in WAD)
        plus a settable signed offset, so tests can put the pool value above and below it.
        Reads the Vault's `pool_amount` mid-deposit, as Perp does.
"""

interface IVaultView:
    def pool_amount() -> uint256: view

vault: public(address)
scale: public(uint256)  # WAD per token unit
offset_max: public(int256)  # WAD added for maximize=True
offset_min: public(int256)  # WAD added for maximize=False


@deploy
def __init__(vault_: address, token_decimals: uint256):
    self.vault = vault_
    self.scale = 10 ** (18 - token_decimals)


@external
def set_offsets(offset_max_: int256, offset_min_: int256):
    self.offset_max = offset_max_
    self.offset_min = offset_min_


@view
@external
def pool_value(maximize: bool) -> uint256:
    base: int256 = convert(staticcall IVaultView(self.vault).pool_amount() * self.scale, int256)
    value: int256 = base + (self.offset_max if maximize else self.offset_min)
    if value < 0:
        return 0
    return convert(value, uint256)
