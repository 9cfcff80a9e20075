# pragma version 0.4.3
"""
@title Test-only leverage source
@notice Stands in for the Configurator in Oracle tests: reports a settable highest max
        leverage (bps), which bounds the Oracle's max_jump_bps once linked.
"""

max_leverage_bps: public(uint256)


@external
def set_max_leverage_bps(leverage_bps: uint256):
    self.max_leverage_bps = leverage_bps
