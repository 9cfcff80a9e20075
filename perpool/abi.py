"""The committed ABI export: one canonical JSON text per deployable contract."""

from __future__ import annotations

import json
from typing import Any

#: Every contract the deploy script deploys (TestToken only on local networks).
DEPLOYABLES: tuple[str, ...] = (
    "Oracle",
    "OracleFeed",
    "Vault",
    "Configurator",
    "Perp",
    "RiskEngine",
    "PerpReader",
    "OrderBook",
    "TestToken",
)


def abi_json(contract_type: Any) -> str:
    """The ABI of an Ape ContractType as stable, sorted, indented JSON."""
    abi = [json.loads(item.model_dump_json(by_alias=True, exclude_none=True)) for item in contract_type.abi]
    return json.dumps(abi, indent=2, sort_keys=True) + "\n"
