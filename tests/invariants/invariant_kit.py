"""What the invariant machines need besides hypothesis: a thin JSON-RPC layer over the
deployed contracts, and the published formulas restated in Python (on top of
tests/unit/perp/helpers.py).

Why not Ape's contract calls: an Ape transaction costs ~130 ms here (gas estimation, receipt
handling) and a view ~10-25 ms, while the machines make one transaction and ~70 views per
step. The machines therefore deploy with Ape (`helpers.build_env`) and isolate with Ape's
snapshots, but talk to the same Anvil node directly: views go in one JSON-RPC batch per
observation (~10 ms), transactions are `eth_sendTransaction` from Anvil's unlocked dev
accounts with a fixed gas limit (~20 ms), and a reverted transaction's reason is read by
replaying it as an `eth_call` on the state it left (unchanged: it reverted) at the same
block time. ABI encoding and decoding come from each contract's ABI as Ape compiled it.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, namedtuple
from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak

WAD = 10**18
BPS = 10_000
MICRO_USD = 10**12
MAX_UINT = 2**256 - 1
DEAD = "0x000000000000000000000000000000000000dead"

#: executed rules per machine and collateral, e.g. STEPS["lp_trading_6dec"]; the module's
#: last test and the terminal summary report the total
STEPS: Counter = Counter()
#: state machine runs that completed, by name (the total is asserted only when all ran)
RUNS: Counter = Counter()
#: what the runs did (successes per step kind, refusals per reason...), per machine label
STATS: dict = defaultdict(Counter)


class Reverted(Exception):
    """A call or transaction that reverted, with its reason string ("" when none)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reverted) and other.reason == self.reason

    def __hash__(self) -> int:
        return hash(("Reverted", self.reason))

    def __repr__(self) -> str:
        return f"Reverted({self.reason!r})"


# ---------------------------------------------------------------- ABI


def _canon(p: dict) -> str:
    t = p["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_canon(c) for c in p["components"]) + ")" + t[len("tuple"):]
    return t


_TUPLES: dict[tuple, type] = {}


def _shape(p: dict):
    """A converter from eth_abi's decoded value to named tuples (structs) and lists."""
    t = p["type"]
    if t.startswith("tuple"):
        names = tuple(c["name"] or f"f{i}" for i, c in enumerate(p["components"]))
        cls = _TUPLES.setdefault(names, namedtuple("Struct", names))
        inner = [_shape(c) for c in p["components"]]

        def conv_tuple(v, cls=cls, inner=inner):
            return cls(*(f(x) for f, x in zip(inner, v)))

        if t != "tuple":  # an array of structs
            return lambda v, c=conv_tuple: [c(x) for x in v]
        return conv_tuple
    if t == "address":
        return lambda v: v.lower()
    if t.endswith("]"):
        return lambda v: list(v)
    return lambda v: v


class Contract:
    """One deployed contract: encodes calls, decodes results and logs."""

    def __init__(self, ape_contract: Any, name: str):
        self.name = name
        self.address = str(ape_contract.address).lower()
        self.fns: dict[tuple[str, int], tuple[bytes, list[str], list[str], list]] = {}
        self.events: dict[bytes, tuple[str, list[dict]]] = {}
        for entry in ape_contract.contract_type.abi:
            e = entry.model_dump(mode="json", by_alias=True)
            if e["type"] == "function":
                ins = [_canon(i) for i in e["inputs"]]
                outs = [_canon(o) for o in e["outputs"]]
                sel = keccak(text=f"{e['name']}({','.join(ins)})")[:4]
                self.fns[(e["name"], len(ins))] = (sel, ins, outs, [_shape(o) for o in e["outputs"]])
            elif e["type"] == "event":
                sig = f"{e['name']}({','.join(_canon(i) for i in e['inputs'])})"
                self.events[keccak(text=sig)] = (e["name"], e["inputs"])

    def encode(self, fn: str, args: tuple) -> str:
        sel, ins, _, _ = self.fns[(fn, len(args))]
        return "0x" + (sel + encode(ins, list(args))).hex()

    def decode_result(self, fn: str, nargs: int, data: str) -> Any:
        _, _, outs, shapes = self.fns[(fn, nargs)]
        values = decode(outs, bytes.fromhex(data[2:]))
        values = [f(v) for f, v in zip(shapes, values)]
        return values[0] if len(values) == 1 else tuple(values)

    def decode_log(self, log: dict) -> dict | None:
        if log["address"].lower() != self.address or not log["topics"]:
            return None
        topic0 = bytes.fromhex(log["topics"][0][2:])
        if topic0 not in self.events:
            return None
        name, inputs = self.events[topic0]
        indexed = [i for i in inputs if i["indexed"]]
        plain = [i for i in inputs if not i["indexed"]]
        out: dict[str, Any] = {"_event": name}
        for i, topic in zip(indexed, log["topics"][1:]):
            out[i["name"]] = _shape(i)(decode([_canon(i)], bytes.fromhex(topic[2:]))[0])
        values = decode([_canon(i) for i in plain], bytes.fromhex(log["data"][2:]))
        for i, v in zip(plain, values):
            out[i["name"]] = _shape(i)(v)
        return out


def _reason(error: dict) -> str:
    data = error.get("data") or "0x"
    if isinstance(data, dict):  # some nodes nest it
        data = data.get("data", "0x")
    if data.startswith("0x08c379a0"):
        return decode(["string"], bytes.fromhex(data[10:]))[0]
    return ""


class Rpc:
    """Batched views and plain transactions against the test node."""

    def __init__(self, web3: Any):
        self.provider = web3.provider
        self.now = 0  # the block time every transaction is mined at (pinned)

    def request(self, method: str, params: list) -> Any:
        response = self.provider.make_request(method, params)
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response["result"]

    def batch(self, calls: list[tuple]) -> list[Any]:
        """calls: (contract, fn, *args); each result decoded, or a Reverted."""
        requests = [
            ("eth_call", [{"to": c.address, "data": c.encode(fn, tuple(args))}, "latest"])
            for c, fn, *args in calls
        ]
        responses = self.provider.make_batch_request(requests)
        if isinstance(responses, dict):  # the whole batch failed
            raise RuntimeError(f"batch: {responses}")
        out = []
        for (c, fn, *args), r in zip(calls, responses):
            if "error" in r:
                out.append(Reverted(_reason(r["error"])))
            else:
                out.append(c.decode_result(fn, len(args), r["result"]))
        return out

    def call(self, contract: Contract, fn: str, *args: Any, sender: str | None = None) -> Any:
        tx = {"to": contract.address, "data": contract.encode(fn, args)}
        if sender:
            tx["from"] = sender
        response = self.provider.make_request("eth_call", [tx, "latest"])
        if "error" in response:
            raise Reverted(_reason(response["error"]))
        return contract.decode_result(fn, len(args), response["result"])

    def pin(self, t: int) -> None:
        self.request("evm_setNextBlockTimestamp", [t])

    def mine_at(self, t: int) -> None:
        """An empty block at time t: later views see block.timestamp == t."""
        self.pin(t)
        self.request("evm_mine", [])
        self.now = t

    def send(self, sender: str, contract: Contract, fn: str, *args: Any) -> list[dict]:
        """Mine `fn(*args)` from `sender` at `self.now`; its logs (raw), or Reverted."""
        tx = {
            "from": sender,
            "to": contract.address,
            "data": contract.encode(fn, args),
            "gas": hex(12_000_000),
        }
        self.pin(self.now)
        tx_hash = self.request("eth_sendTransaction", [tx])
        receipt = None
        for _ in range(30_000):  # up to ~30 s: Anvil automines at once, a loaded machine is slower
            receipt = self.provider.make_request("eth_getTransactionReceipt", [tx_hash]).get("result")
            if receipt:
                break
            time.sleep(0.001)
        assert receipt, f"no receipt for {fn}"
        if int(receipt["status"], 16) == 0:
            # the state is as before the transaction (but the sender's nonce and gas): the
            # same call in the same block time reverts the same way
            replay = self.provider.make_request("eth_call", [{k: tx[k] for k in ("from", "to", "data")}, "latest"])
            if "error" not in replay:
                raise AssertionError(f"{fn}{args}: mined as reverted but the replay succeeds (out of gas?)")
            raise Reverted(_reason(replay["error"]))
        return receipt["logs"]


def events(logs: list[dict], *contracts: Contract) -> list[dict]:
    out = []
    for log in logs:
        for c in contracts:
            d = c.decode_log(log)
            if d is not None:
                d["_contract"] = c.name
                out.append(d)
                break
    return out


# ---------------------------------------------------------------- arithmetic (as the contracts)


def ceil_div(x: int, d: int) -> int:
    return -(-x // d)


def mul_div(x: int, y: int, d: int, up: bool = False) -> int:
    return ceil_div(x * y, d) if up else x * y // d


def bps_of(x: int, bps: int, up: bool) -> int:
    return mul_div(x, bps, BPS, up)


def pnl_usd(size_usd: int, size_tokens: int, price: int, is_long: bool) -> int:
    if is_long:
        return mul_div(size_tokens, price, WAD, False) - size_usd
    return size_usd - mul_div(size_tokens, price, WAD, True)


def trunc_mul_wad(x: int, y: int) -> int:
    """x * y / WAD truncated toward zero (Perp's `_signed_mul_wad`, aggregates only)."""
    q = abs(x * y) // WAD
    return q if y >= 0 else -q


def to_tokens(wad: int, scale: int, up: bool) -> int:
    return mul_div(wad, 1, scale, up)


def signed_tokens(wad: int, scale: int) -> int:
    """Gains to a position round down, costs up (away from zero)."""
    if wad >= 0:
        return to_tokens(wad, scale, False)
    return -to_tokens(-wad, scale, True)


def funding_wad(size_usd: int, snapshot: int, index: int) -> int:
    delta = index - snapshot
    if delta >= 0:
        return mul_div(size_usd, delta, WAD, False)
    return -mul_div(size_usd, -delta, WAD, True)


def received_per_usd(paid: int, payer_oi: int, receiver_oi: int) -> int:
    return min(mul_div(paid, payer_oi, receiver_oi, False), paid * 10)


def maintenance(size_usd: int, cfg: Any, risk: Any) -> int:
    """Perp._maintenance: the highest tier whose threshold the size reaches, else the base."""
    bps = cfg.maintenance_margin_bps
    for threshold, tier_bps in zip(risk.tier_threshold_usd, risk.tier_maintenance_bps):
        if threshold == 0 or size_usd < threshold:
            break
        bps = tier_bps
    return max(bps_of(size_usd, bps, True), cfg.min_maintenance_usd)


def reserve_tokens(open_interest_usd: int, reserve_factor_bps: int, scale: int) -> int:
    return to_tokens(bps_of(open_interest_usd, reserve_factor_bps, True), scale, True)


@dataclass(frozen=True)
class Pos:
    size_usd: int = 0
    size_tokens: int = 0
    collateral: int = 0
    borrow_index: int = 0
    funding_index: int = 0

    @classmethod
    def of(cls, raw: Any) -> "Pos":
        return cls(raw.size_usd, raw.size_tokens, raw.collateral, raw.borrow_index, raw.funding_index)

    @classmethod
    def of_event(cls, e: dict) -> "Pos":
        return cls(e["size_usd"], e["size_tokens"], e["collateral"], e["borrow_index"], e["funding_index"])


@dataclass
class Values:
    """Perp._values: WAD USD."""

    pnl: int
    borrowing_fee: int
    funding: int
    close_fee: int
    remaining: int
    maintenance: int


def values(pos: Pos, is_long: bool, price: int, idx: Any, cfg: Any, risk: Any, scale: int) -> Values:
    index = idx.funding_long if is_long else idx.funding_short
    v = Values(
        pnl=pnl_usd(pos.size_usd, pos.size_tokens, price, is_long),
        borrowing_fee=mul_div(pos.size_usd, idx.borrow - pos.borrow_index, WAD, True),
        funding=funding_wad(pos.size_usd, pos.funding_index, index),
        close_fee=bps_of(pos.size_usd, cfg.position_fee_bps, True),
        remaining=0,
        maintenance=maintenance(pos.size_usd, cfg, risk),
    )
    v.remaining = pos.collateral * scale + v.pnl + v.funding - v.borrowing_fee - v.close_fee
    return v


@dataclass
class Pending:
    borrow_fee: int = 0
    funding_paid: int = 0
    funding_received: int = 0


def pending(pos: Pos, is_long: bool, idx: Any, scale: int) -> Pending:
    if pos.size_usd == 0:
        return Pending()
    index = idx.funding_long if is_long else idx.funding_short
    out = Pending(borrow_fee=to_tokens(mul_div(pos.size_usd, idx.borrow - pos.borrow_index, WAD, True), scale, True))
    f = funding_wad(pos.size_usd, pos.funding_index, index)
    if f >= 0:
        out.funding_received = to_tokens(f, scale, False)
    else:
        out.funding_paid = to_tokens(-f, scale, True)
    return out


@dataclass
class Expect:
    """A predicted successful change (token units unless named)."""

    position: Pos = field(default_factory=Pos)
    price: int = 0
    size_delta: int = 0
    collateral_in: int = 0
    amount_out: int = 0
    position_fee: int = 0
    borrow_fee: int = 0
    funding: int = 0
    pnl: int = 0
    bad_debt: int = 0
    pool_delta: int = 0
    collateral_delta: int = 0
    insurance_delta: int = 0
    bad_debt_lps: int = 0
    extra: dict = field(default_factory=dict)
