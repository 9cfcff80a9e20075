"""Fixtures of the negative controls: the variants' contract containers, compiled once per
session, and the unit suites' helper modules on the import path (their checks are reused)."""

from __future__ import annotations

import sys

from pathlib import Path

import pytest

_PERP_TESTS = Path(__file__).resolve().parents[1] / "unit" / "perp"
if str(_PERP_TESTS) not in sys.path:
    sys.path.insert(0, str(_PERP_TESTS))


@pytest.fixture(scope="session")
def variant_container(project):
    """variant_container(variant) -> an Ape ContractContainer of the patched contract,
    compiled on first use and checked to differ from the real contract's bytecode (a patch
    that compiles to the same code would test nothing)."""
    from ape.contracts import ContractContainer

    import variants

    cache: dict[str, ContractContainer] = {}

    def get(variant: variants.Variant) -> ContractContainer:
        if variant.name not in cache:
            contract_type = variants.compile_variant(variant)
            real = getattr(project, variant.contract).contract_type.deployment_bytecode.bytecode
            assert contract_type.deployment_bytecode.bytecode != real, (
                f"variant {variant.name!r} compiles to the real {variant.contract}'s bytecode"
            )
            cache[variant.name] = ContractContainer(contract_type)
        return cache[variant.name]

    return get
