"""The simulation's view of the devnet: the keepers' chain client for reads and logs, plus
devnet-only writes (Anvil's impersonation: any address sends without a key, so a crowd of
hundreds needs no key management) and chain-time control."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from web3 import Web3

from keepers.chain import Chain
from keepers.log import Log
from keepers.metrics import Metrics
from keepers.settings import load_settings

TX_GAS = 3_000_000  # gas limit of a crowd transaction (skips an estimate round trip)
ETH_FOR_GAS = 10 * 10**18  # wei each simulated account holds


class SimError(RuntimeError):
    """The simulation cannot go on; the message says why."""


class Node:
    """Reads through `keepers.chain.Chain` (the deployment's contracts by name, JSON-RPC
    batches, chunked logs); writes as any address through Anvil's impersonation."""

    def __init__(self, url: str, deployment: Path) -> None:
        settings = load_settings(None, rpc_urls=[url], deployment=deployment, metrics_port=0)
        self.chain = Chain(settings, Log("sim", io.StringIO()), Metrics())
        self.w3: Web3 = self.chain.w3
        self.url = url
        self.rpc("anvil_autoImpersonateAccount", [True])

    def contract(self, name: str) -> Any:
        return self.chain.contracts[name]

    def rpc(self, method: str, params: list[Any]) -> Any:
        response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in response:
            raise SimError(f"{method}: {response['error'].get('message')}")
        return response.get("result")

    # ------------------------------------------------------------ writes

    def fund_gas(self, address: str) -> None:
        self.rpc("anvil_setBalance", [address, hex(ETH_FOR_GAS)])

    def send(self, fn: Any, sender: str, must: bool = True) -> Any:
        """Send `fn` from `sender` (impersonated) and return its receipt (Anvil mines each
        transaction as it arrives). `must`: a reverted transaction raises `SimError`."""
        tx_hash = self.w3.eth.send_transaction(
            {"from": sender, "to": fn.address, "data": fn._encode_transaction_data(), "gas": TX_GAS}
        )
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        if must and receipt["status"] != 1:
            raise SimError(f"{fn.fn_name} from {sender} reverted: {self.revert_reason(fn, sender)}")
        return receipt

    def revert_reason(self, fn: Any, sender: str) -> str:
        try:
            fn.call({"from": sender})
        except Exception as exc:  # noqa: BLE001 (any revert: its text is the reason)
            return str(exc)
        return "no reason (it succeeds now)"

    # ------------------------------------------------------------ time

    def head(self) -> int:
        return self.w3.eth.block_number

    def now(self) -> int:
        return self.chain.timestamp("latest")

    def warp(self, timestamp: int) -> int:
        """Mine one block at `timestamp` (or one second after the latest block when that is
        later); return the block's time."""
        target = max(timestamp, self.now() + 1)
        self.rpc("evm_mine", [target])
        return self.now()
