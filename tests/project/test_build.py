"""The build itself: pinned pragmas, committed ABIs equal to the compiled contracts, and
every deployable under the public networks' code size limit."""

from pathlib import Path

import pytest

from perpool.abi import DEPLOYABLES, abi_json
from perpool.deployments import ABI_DIR, ROOT

EIP170_LIMIT = 24_576  # bytes of runtime code
PRAGMA = "# pragma version 0.4.3"
SOURCES = sorted((ROOT / "contracts").rglob("*.vy")) + sorted((ROOT / "contracts").rglob("*.vyi"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_source__pragma__pins_the_installed_vyper_exactly(path: Path):
    first = path.read_text().splitlines()[0]
    assert first == PRAGMA


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_abi_export__equals_the_compiled_contract(project, name):
    committed = (ABI_DIR / f"{name}.json").read_text()
    assert committed == abi_json(getattr(project, name).contract_type), (
        f"abi/{name}.json is out of date: run `make abi`"
    )


@pytest.mark.parametrize("name", [n for n in DEPLOYABLES if not n.startswith("Test")])
def test_deployable__runtime_code__fits_eip170(project, name):
    runtime = bytes.fromhex(getattr(project, name).contract_type.runtime_bytecode.bytecode[2:])
    # immutables are appended to the runtime at deploy time, 32 bytes each
    assert len(runtime) + 32 * 8 <= EIP170_LIMIT, f"{name}: {len(runtime)} bytes"


@pytest.mark.parametrize("name", [n for n in DEPLOYABLES if not n.startswith("Test")])
def test_deployable__deployed_code__fits_eip170(project, deployer, chain, name):
    # the size Anvil actually stores, including immutables
    from perpool.deploy import deploy_protocol

    token = deployer.deploy(project.TestToken, "Test USD", "tUSD", 6)
    protocol = deploy_protocol(project, deployer, token, chain=chain)
    contract = {
        "Oracle": protocol.oracle,
        "Vault": protocol.vault,
        "Perp": protocol.perp,
        "Configurator": protocol.configurator,
        "RiskEngine": protocol.risk,
        "PerpReader": protocol.reader,
        "OracleFeed": protocol.feeds["ETH"],
        "OrderBook": protocol.orders,
    }[name]
    code = chain.provider.get_code(contract.address)
    assert 0 < len(code) <= EIP170_LIMIT
