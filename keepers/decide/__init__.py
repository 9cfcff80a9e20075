"""Pure decision functions over integers: what the keepers do, given what they read.

Nothing here touches the chain, the network or a clock; every money amount is an `int` in
the contracts' units, so the daemons stay thin and these modules are tested without a chain.
"""
