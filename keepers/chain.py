"""The one chain client every keeper shares: web3 + eth-account, contracts from the
deployment file and the committed `abi/`, a local nonce, EIP-1559 fees, simulate-then-send,
replacement of stuck transactions, retries with backoff and a fallback RPC URL."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import requests
from eth_account import Account
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from keepers.log import Log
from keepers.metrics import Metrics
from keepers.settings import KeeperSettings, SettingsError
from perpool.deployments import Deployment, DeploymentError, load, load_abi

T = TypeVar("T")
GWEI = 10**9
GAS_MARGIN_BPS = 12_000  # send with the estimate + 20 %
# connection refused or reset, timeouts, and HTTP errors (a node answering 500): all worth a
# retry and a move to the next RPC URL
TRANSPORT_ERRORS = (requests.RequestException, ConnectionError, TimeoutError)


class ChainError(RuntimeError):
    """The chain cannot be used: unreachable RPC, wrong chain id, or a deployment file that
    does not match the chain. The message says which."""


@dataclass
class Sent:
    """What became of one transaction."""

    label: str
    tx_hash: str | None  # None: refused by the simulation, never sent
    status: int  # 1 mined ok, 0 mined and reverted, -1 not sent, -2 no receipt in time
    gas_used: int = 0
    block: int = 0
    reason: str = ""


class Chain:
    def __init__(self, settings: KeeperSettings, log: Log, metrics: Metrics) -> None:
        self.settings, self.log, self.metrics = settings, log, metrics
        # set by the daemon loop on SIGINT/SIGTERM: no more retries or replacements, and a
        # transaction in flight is followed for `shutdown_grace_s` at most
        self.stopping = threading.Event()
        self._stop_seen: float | None = None
        self._url = 0
        self.w3 = Web3(Web3.HTTPProvider(settings.rpc_urls[0], request_kwargs={"timeout": 10}))
        try:
            self.chain_id = self.retry(lambda: self.w3.eth.chain_id)
        except TRANSPORT_ERRORS as exc:
            raise ChainError(f"no RPC answers at {', '.join(settings.rpc_urls)}: {exc}") from exc
        if settings.chain_id is not None and settings.chain_id != self.chain_id:
            raise ChainError(f"the RPC serves chain {self.chain_id}, the settings expect {settings.chain_id}")
        try:
            self.deployment: Deployment = load(settings.deployment)
        except DeploymentError as exc:
            raise ChainError(str(exc)) from exc
        if self.deployment.chain_id != self.chain_id:
            raise ChainError(
                f"{settings.deployment} is for chain {self.deployment.chain_id}, the RPC serves {self.chain_id}"
            )
        self.contracts: dict[str, Any] = {}
        for name, address in self.deployment.contracts.items():
            if name == "Token":
                name_abi = "TestToken"
            else:
                name_abi = name
            try:
                abi = load_abi(name_abi, settings.abi_dir)
            except DeploymentError:
                continue
            self.contracts[name] = self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)
        perp = self.deployment.contracts.get("Perp")
        if perp is None or self.retry(lambda: self.w3.eth.get_code(Web3.to_checksum_address(perp))) in (b"", None):
            raise ChainError(
                f"no Perp contract at {perp} on chain {self.chain_id}: {settings.deployment} does not "
                "match this chain (a restarted devnet? deploy again)"
            )
        try:
            self.account = Account.from_key(settings.key(self.chain_id))
        except SettingsError:
            raise
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"private key: not a valid key ({type(exc).__name__})") from exc
        self._nonce: int | None = None

    # ------------------------------------------------------------ reads

    def __getattr__(self, name: str) -> Any:
        # chain.perp, chain.oracle, ... : the deployment's contracts by lower-case name
        for key, contract in self.__dict__.get("contracts", {}).items():
            if key.lower() == name.replace("_", "").lower():
                return contract
        raise AttributeError(name)

    def retry(self, fn: Callable[[], T]) -> T:
        """Run an RPC read, retrying transport failures with exponential backoff and moving
        to the next RPC URL after each failure."""
        attempts = self.settings.rpc_retries + 1
        for attempt in range(attempts):
            try:
                return fn()
            except TRANSPORT_ERRORS as exc:
                self.metrics.inc("rpc_errors")
                if attempt == attempts - 1 or self.stopping.is_set():
                    raise
                self.log.warn("rpc_error", error=type(exc).__name__, attempt=attempt + 1, url=self.url)
                if self.stopping.wait(self.settings.rpc_backoff_s * 2**attempt):
                    raise  # stopped during the backoff: no more retries
                self._next_url()
        raise AssertionError("unreachable")

    @property
    def url(self) -> str:
        return self.settings.rpc_urls[self._url]

    def _next_url(self) -> None:
        if len(self.settings.rpc_urls) > 1:
            self._url = (self._url + 1) % len(self.settings.rpc_urls)
            self.w3.provider = Web3.HTTPProvider(self.url, request_kwargs={"timeout": 10})

    def head(self) -> int:
        number = self.retry(lambda: self.w3.eth.block_number)
        self.metrics.set("last_block", number)
        return number

    def timestamp(self, block: int | str = "latest") -> int:
        return int(self.retry(lambda: self.w3.eth.get_block(block)["timestamp"]))

    def call(self, fn: Any, block: int | str = "latest") -> Any:
        return self.retry(lambda: fn.call({"from": self.account.address}, block_identifier=block))

    def call_many(self, fns: list[Any], block: int | str = "latest") -> list[Any]:
        """Several view calls in one JSON-RPC batch request, results in order. A call that
        reverts comes back as its exception (`ContractLogicError` or `Web3RPCError`) in
        its place: when any answer of the batch is an error, the batch is asked again one
        call at a time so each gets its own answer."""
        if not fns:
            return []
        try:
            def batch() -> list[Any]:
                with self.w3.batch_requests() as requests_:
                    for fn in fns:
                        requests_.add(fn.call({"from": self.account.address}, block_identifier=block))
                    return list(requests_.execute())

            return self.retry(batch)
        except (ContractLogicError, Web3RPCError, ValueError):
            pass  # one call reverted (or a node without batches): one at a time
        out: list[Any] = []
        for fn in fns:
            try:
                out.append(self.call(fn, block))
            except (ContractLogicError, Web3RPCError) as exc:
                out.append(exc)
        return out

    def logs(self, event: Any, from_block: int, to_block: int) -> list[Any]:
        """Every log of `event` in [from_block, to_block], fetched in chunks."""
        out: list[Any] = []
        start = from_block
        while start <= to_block:
            end = min(start + self.settings.log_chunk_blocks - 1, to_block)
            out.extend(self.retry(lambda: event.get_logs(from_block=start, to_block=end)))
            start = end + 1
        return out

    # ------------------------------------------------------------ writes

    def simulate(self, fn: Any) -> str | None:
        """None when `fn` would succeed in the next block, else the revert reason. Runs
        against the pending block, so time-dependent checks see the time the transaction
        will be mined at (a pinned next timestamp on a devnet included)."""
        try:
            self.retry(lambda: fn.call({"from": self.account.address}, block_identifier="pending"))
            return None
        except ContractLogicError as exc:
            return str(exc.message or exc)
        except Web3RPCError as exc:
            return str(exc)

    def send(self, fn: Any, label: str, **fields: Any) -> Sent:
        """Simulate, then send with a local nonce and EIP-1559 fees; replace the transaction
        with higher fees (same nonce) while it is not mined, up to `max_fee_gwei`; follow it
        to a receipt. Never raises for a revert: the result says what happened."""
        reason = self.simulate(fn)
        if reason is not None:
            self.log("skip", action=label, reason=reason, **fields)
            return Sent(label, None, -1, reason=reason)
        try:
            estimate = self.retry(lambda: fn.estimate_gas({"from": self.account.address}, block_identifier="pending"))
        except (ContractLogicError, Web3RPCError) as exc:  # the state moved since the simulation
            self.log("skip", action=label, reason=str(exc), **fields)
            return Sent(label, None, -1, reason=str(exc))
        gas = estimate * GAS_MARGIN_BPS // 10_000
        nonce = self._take_nonce()
        max_fee, tip = self._fees()
        deadline = time.monotonic() + self.settings.receipt_timeout_s
        hashes: list[str] = []
        while True:
            tx = fn.build_transaction(
                {
                    "from": self.account.address,
                    "nonce": nonce,
                    "gas": gas,
                    "maxFeePerGas": max_fee,
                    "maxPriorityFeePerGas": tip,
                    "chainId": self.chain_id,
                }
            )
            signed = self.account.sign_transaction(tx)
            try:
                tx_hash = Web3.to_hex(self.retry(lambda: self.w3.eth.send_raw_transaction(signed.raw_transaction)))
                hashes.append(tx_hash)
                self.log("sent", action=label, tx=tx_hash, nonce=nonce, max_fee=max_fee, gas=gas, **fields)
            except (Web3RPCError, *TRANSPORT_ERRORS) as exc:
                if not hashes:  # nothing of ours known in flight: re-read the nonce next time
                    self._nonce = None
                    self.log.error("send_failed", action=label, error=f"{type(exc).__name__}: {exc}", **fields)
                    return Sent(label, None, -1, reason=str(exc))
                # a replacement refused (e.g. the original just got mined): keep waiting
            receipt = self._wait(hashes, min(self.settings.stuck_after_s, max(deadline - time.monotonic(), 0.1)))
            if receipt is None and self.stopping.is_set():
                receipt = self._wait(hashes, max(self._grace_end() - time.monotonic(), 0.0))
                if receipt is None:
                    # recorded, not replaced: the next start re-reads the nonce from the node
                    self.log.error("abandoned_on_stop", action=label, txs=hashes, nonce=nonce, **fields)
                    self._nonce = None
                    return Sent(label, hashes[-1], -2, reason="stopped before a receipt")
            if receipt is not None:
                sent = Sent(label, Web3.to_hex(receipt["transactionHash"]), int(receipt["status"]),
                            int(receipt["gasUsed"]), int(receipt["blockNumber"]))
                self.log("mined", action=label, tx=sent.tx_hash, status=sent.status, gas_used=sent.gas_used,
                         block=sent.block, **fields)
                return sent
            if time.monotonic() >= deadline:
                self.log.error("no_receipt", action=label, txs=hashes, **fields)
                self._nonce = None
                return Sent(label, hashes[-1], -2, reason="no receipt in time")
            bumped = max_fee * (10_000 + self.settings.fee_bump_bps) // 10_000
            cap = self.settings.max_fee_gwei * GWEI
            if bumped > cap:
                self.log.warn("fee_cap", action=label, max_fee=max_fee, cap=cap, **fields)
                continue  # keep waiting at the cap
            # the tip rises by the same share, and never above the max fee (a node refuses that)
            max_fee, tip = bumped, min(tip * (10_000 + self.settings.fee_bump_bps) // 10_000 + 1, bumped)
            self.metrics.inc("tx_replaced")
            self.log.warn("replace", action=label, nonce=nonce, max_fee=max_fee, **fields)

    def _grace_end(self) -> float:
        """When a stopping keeper stops waiting for a receipt: `shutdown_grace_s` after the
        stop was first seen here."""
        if self._stop_seen is None:
            self._stop_seen = time.monotonic()
        return self._stop_seen + self.settings.shutdown_grace_s

    def _wait(self, hashes: list[str], seconds: float) -> Any:
        end = time.monotonic() + seconds
        while True:
            if self.stopping.is_set():
                end = min(end, self._grace_end())
            for tx_hash in hashes:
                try:
                    receipt = self.retry(lambda: self.w3.eth.get_transaction_receipt(tx_hash))
                except Exception:  # noqa: BLE001 (not found yet: web3 raises)
                    receipt = None
                if receipt is not None:
                    return receipt
            if time.monotonic() >= end:
                return None
            time.sleep(min(0.2, self.settings.poll_interval_s))

    def _take_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = self.retry(lambda: self.w3.eth.get_transaction_count(self.account.address, "pending"))
        nonce = self._nonce
        self._nonce += 1
        return nonce

    def _fees(self) -> tuple[int, int]:
        base = int(self.retry(lambda: self.w3.eth.get_block("latest")).get("baseFeePerGas", 0))
        tip = self.settings.priority_fee_gwei * GWEI
        return min(2 * base + tip, self.settings.max_fee_gwei * GWEI), tip
