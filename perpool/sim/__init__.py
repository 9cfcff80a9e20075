"""The devnet simulation: a crowd of traders, the real keepers and a scenario's price path on
a local Anvil, measured step by step into a report (see docs/simulation.md)."""
