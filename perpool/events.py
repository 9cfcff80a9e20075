"""Decoders for events that pack two 128-bit values per data word to save gas.

`Vault.Settled` carries its six amounts in three words, low half first: the bucket deltas as
int128 two's complement halves, the credit as an unsigned 128-bit half (token units).
`settled(log)` gives them back by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HALF = 128
MASK_128 = 2**128 - 1


def int128(word: int) -> int:
    """The low 128 bits of `word` as a signed (two's complement) integer."""
    value = word & MASK_128
    return value - 2**128 if value >= 2**127 else value


@dataclass(frozen=True)
class Settled:
    """One `Vault.Settled` log, decoded: token units; the deltas sum to
    amount_in - amount_out - credited (the amounts in and out are the token's Transfer logs)."""

    controller: str
    pool_delta: int
    collateral_delta: int
    escrow_delta: int
    insurance_delta: int
    reserved_delta: int
    credited: int


def settled(log: Any) -> Settled:
    """Decode a `Vault.Settled` log: an Ape ContractLog or a web3 event."""
    args = log.event_arguments if hasattr(log, "event_arguments") else log["args"]
    pc, ei, rc = int(args["pool_collateral"]), int(args["escrow_insurance"]), int(args["reserved_credited"])
    return Settled(
        controller=str(args["controller"]),
        pool_delta=int128(pc),
        collateral_delta=int128(pc >> HALF),
        escrow_delta=int128(ei),
        insurance_delta=int128(ei >> HALF),
        reserved_delta=int128(rc),
        credited=rc >> HALF,
    )
