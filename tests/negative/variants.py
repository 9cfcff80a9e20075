"""Deliberately broken variants of the contracts, for the negative controls.

A `Variant` names one contract and a list of exact textual patches. `patched_source` applies
them to the contract's real source, refusing (PatchError) unless every original snippet
occurs exactly once: a refactor that moves or rewords the code fails loudly here instead of
silently producing a "variant" identical to the real contract. `compile_variant` copies the
whole `contracts/` tree into a temporary folder, writes the patched file over the original
and compiles it with the pip `vyper` (the same compiler and default settings ape-vyper uses,
so an unpatched compile gives Ape's exact bytecode: see the harness test), returning an
`ethpm_types.ContractType` that `ContractContainer` deploys through Ape.

Nothing here touches `contracts/` or `.build/`: the variants exist only inside the test run.
"""

from __future__ import annotations

import shutil
import tempfile

from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"


class PatchError(AssertionError):
    """A variant's original snippet is missing from the contract or occurs more than once."""


@dataclass(frozen=True)
class Variant:
    name: str  # also the test names' prefix
    contract: str  # file stem under contracts/, e.g. "Perp"
    patches: tuple[tuple[str, str], ...]  # (original snippet, replacement), each exactly once
    summary: str

    @property
    def contract_name(self) -> str:
        return f"{self.contract}__{self.name}"


def patched_source(variant: Variant, source: str | None = None) -> str:
    path = CONTRACTS / f"{variant.contract}.vy"
    text = path.read_text() if source is None else source
    for old, new in variant.patches:
        found = text.count(old)
        if found != 1:
            raise PatchError(
                f"variant {variant.name!r}: the snippet to patch occurs {found} times in "
                f"contracts/{variant.contract}.vy (expected exactly once); the contract changed, "
                f"so update the variant in tests/negative/variants.py. Snippet:\n{old}"
            )
        text = text.replace(old, new)
    return text


def compile_source(contract: str, source: str, name: str) -> Any:
    """Compile `source` as contracts/<contract>.vy of a private copy of the contracts tree
    (so its `from contracts.lib import ...` imports resolve to the real libraries)."""
    import vyper

    from ethpm_types import ContractType
    from vyper.compiler.input_bundle import FilesystemInputBundle

    with tempfile.TemporaryDirectory(prefix="perpool-variant-") as tmp:
        work = Path(tmp)
        shutil.copytree(CONTRACTS, work / "contracts")
        (work / "contracts" / f"{contract}.vy").write_text(source)
        out = vyper.compile_code(
            source,
            contract_path=f"contracts/{contract}.vy",
            input_bundle=FilesystemInputBundle([work]),
            output_formats=["abi", "bytecode"],
        )
    return ContractType.model_validate(
        {
            "contractName": name,
            "abi": out["abi"],
            "deploymentBytecode": {"bytecode": out["bytecode"]},
        }
    )


def compile_variant(variant: Variant) -> Any:
    return compile_source(variant.contract, patched_source(variant), variant.contract_name)


class SwappedProject:
    """Ape's `project` with some contract containers replaced: pass it to `deploy_protocol`
    (or `build_env`) to deploy and wire the whole protocol exactly as the real deploy does,
    with one contract swapped for its variant."""

    def __init__(self, project: Any, **containers: Any):
        self._project = project
        self._containers = containers

    def __getattr__(self, name: str) -> Any:
        if name in self._containers:
            return self._containers[name]
        return getattr(self._project, name)


# ---------------------------------------------------------------- the variants

_SHARES_ROUND_UP = (
    "shares = math.mul_div(net_wad, supply, value, False)  # shares round down",
    "shares = math.mul_div(net_wad, supply, value, True)  # VARIANT: shares round up",
)

VAULT_SHARES_ROUND_UP = Variant(
    name="vault_shares_round_up",
    contract="Vault",
    patches=(
        _SHARES_ROUND_UP,
        # the Vault's own share-price check would refuse the deposit first (see the next
        # variant): without it, the suite's dilution check is what must catch the rounding
        (
            "if after * supply < value * (supply + shares):",
            "if False:  # VARIANT: the share-price check removed",
        ),
    ),
    summary="Vault.deposit mints shares rounded up instead of down (rounding against the pool), "
    "its share-price check removed",
)

VAULT_SHARES_ROUND_UP_CHECKED = Variant(
    name="vault_shares_round_up_checked",
    contract="Vault",
    patches=(_SHARES_ROUND_UP,),
    summary="Vault.deposit mints shares rounded up, the Vault's share-price check kept",
)

VAULT_MISSING_LOCK = Variant(
    name="vault_missing_lock",
    contract="Vault",
    patches=(
        ("# pragma nonreentrancy on\n", ""),
        # without the pragma `@reentrant` does not compile; every function is unlocked anyway
        ("@reentrant\n@view\n@external\ndef pool_amount()", "@view\n@external\ndef pool_amount()"),
    ),
    summary="Vault without `# pragma nonreentrancy on`: no function takes the lock",
)

PERP_MISSING_LOCK = Variant(
    name="perp_missing_lock",
    contract="Perp",
    patches=(("# pragma nonreentrancy on\n", ""),),
    summary="Perp without `# pragma nonreentrancy on`: no function takes the lock",
)

FUNDING_RECEIVED_ROUNDS_UP = Variant(
    name="funding_received_rounds_up",
    contract="Perp",
    patches=(
        (
            "s.funding_received = self._to_tokens(convert(funding, uint256), False)",
            "s.funding_received = self._to_tokens(convert(funding, uint256), True)",
        ),
    ),
    summary="Perp._pending credits funding received rounded up to token units instead of down",
)

LIQUIDATE_AT_THE_BOUNDARY = Variant(
    name="liquidate_at_the_boundary",
    contract="Perp",
    patches=(
        (
            "    if v.remaining >= convert(v.maintenance, int256):\n"
            "        if must:\n"
            '            self._fail("perp: position healthy")',
            "    if v.remaining > convert(v.maintenance, int256):\n"
            "        if must:\n"
            '            self._fail("perp: position healthy")',
        ),
    ),
    summary="Perp._liquidate counts a position healthy only when remaining > maintenance "
    "(`>` for `>=`), so remaining == maintenance is liquidated",
)

ORACLE_NO_STALENESS = Variant(
    name="oracle_no_staleness",
    contract="Oracle",
    patches=(('    assert not self._is_stale(slot, cfg), "oracle: stale price"\n', ""),),
    summary="Oracle.get_price no longer reverts on a stale price",
)

ALL = (
    VAULT_SHARES_ROUND_UP,
    VAULT_MISSING_LOCK,
    PERP_MISSING_LOCK,
    FUNDING_RECEIVED_ROUNDS_UP,
    LIQUIDATE_AT_THE_BOUNDARY,
    ORACLE_NO_STALENESS,
)
