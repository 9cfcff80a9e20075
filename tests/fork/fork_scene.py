"""The fork suite's scene: the upstream network the fork is taken from, read with plain
JSON-RPC, and the helpers the tests on the fork share. Not a test module.

The upstream is Sepolia (chain id 11155111):

- with `PERPOOL_FORK_RPC_URL` set, that RPC (a public Sepolia endpoint), with the perpool
  deployment in `PERPOOL_FORK_DEPLOYMENT` (default `deployments/sepolia.json`);
- without it, a stand-in: a local Anvil this run starts on a free loopback port with
  Sepolia's chain id (Ape checks a network's chain id on connect) and interval mining (a
  live network mines with or without transactions, and Ape's deploy waits for
  confirmations there), and perpool deployed to it through Ape's `ethereum:sepolia`
  network as `ape run deploy` deploys off a local network: direct fills off, no updaters,
  no seeded prices; then what an operator does next (a price keeper, first prices, a pool).

Everything the fork does is meant to stay on the fork: `UpstreamState` reads, over plain
JSON-RPC, what the fork's transactions would have changed upstream."""

from __future__ import annotations

import itertools
import json
import os
import random
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from perpool import params
from perpool.deploy import deploy_protocol, deploy_token
from perpool.deployments import ROOT, Deployment, DeploymentError, load, load_abi, save
from perpool.devnet import find_anvil, stop_process

SEPOLIA = 11155111
RPC_ENV = "PERPOOL_FORK_RPC_URL"
DEPLOYMENT_ENV = "PERPOOL_FORK_DEPLOYMENT"
DEFAULT_DEPLOYMENT = ROOT / "deployments" / "sepolia.json"

#: The stand-in's interval mining, seconds: sub-second while perpool is deployed (Ape waits
#: for Sepolia's two confirmations after each of its ~45 transactions), then a block a
#: second for the rest of the session. Transactions are also mined at once.
STANDIN_DEPLOY_BLOCK_TIME = "0.1"
STANDIN_BLOCK_TIME = 1
#: Ports for the stand-in: below Linux's ephemeral range (32768+) and Ape's `host: auto`
#: range (49152-60999), so neither a client socket nor the fork's own Anvil can take it.
STANDIN_PORTS = (20_000, 32_767)

WAD = 10**18
BPS = 10_000
UNIT = 10**6  # token units per dollar of the stand-in's 6-decimal test stablecoin
MAX_UINT = 2**256 - 1
MARKET_INCREASE, MARKET_DECREASE = 0, 2
FEE = params.MIN_EXECUTION_FEE
STANDIN_POOL_USD = 1_000_000  # what the stand-in's operator deposits as the first LP


# ---------------------------------------------------------------- plain JSON-RPC


def rpc(url: str, method: str, params_: list | None = None, timeout: float = 10.0) -> Any:
    """One JSON-RPC request; its result (an error answer raises)."""
    return rpc_batch(url, [(method, params_ or [])], timeout)[0]


def rpc_batch(url: str, calls: list[tuple[str, list]], timeout: float = 30.0) -> list[Any]:
    """Several JSON-RPC requests in one batch; the results in order."""
    if not calls:
        return []
    body = json.dumps(
        [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    ).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answers = {a["id"]: a for a in json.loads(response.read())}
    out = []
    for i, (method, _) in enumerate(calls):
        answer = answers[i]
        if "error" in answer:
            raise RuntimeError(f"{method} on {url}: {answer['error']}")
        out.append(answer["result"])
    return out


def endpoint(url: str) -> tuple[str, int | None]:
    """(host, port) of an RPC URL, with localhost and 127.0.0.1 the same host."""
    parts = urlsplit(url)
    host = (parts.hostname or "").replace("localhost", "127.0.0.1")
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return host, port


# ---------------------------------------------------------------- the upstream


@dataclass
class Upstream:
    """The network the fork is taken from. `process` is the stand-in Anvil (None: a public
    RPC this run does not own, where other people's transactions also land)."""

    url: str
    deployment_path: Path
    deployment: Deployment
    process: subprocess.Popen | None = None
    w3: Web3 = field(init=False)

    def __post_init__(self) -> None:
        self.w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 30}))

    @property
    def standin(self) -> bool:
        return self.process is not None

    def contract(self, name: str) -> Any:
        """A web3 contract on the upstream (the committed ABI; "Token" is the TestToken's)."""
        abi = load_abi("TestToken" if name == "Token" else name)
        address = Web3.to_checksum_address(self.deployment.contracts[name])
        return self.w3.eth.contract(address=address, abi=abi)

    def head(self) -> int:
        return int(rpc(self.url, "eth_blockNumber"), 16)

    def state(self, watched: list[str], block: int | str = "latest") -> "UpstreamState":
        return UpstreamState.read(self, watched, block)


def public_upstream(url: str) -> Upstream:
    """A public Sepolia RPC and the perpool deployment there."""
    chain_id = int(rpc(url, "eth_chainId"), 16)
    if chain_id != SEPOLIA:
        raise RuntimeError(f"{RPC_ENV} serves chain {chain_id}, not Sepolia ({SEPOLIA})")
    path = Path(os.environ.get(DEPLOYMENT_ENV) or DEFAULT_DEPLOYMENT)
    try:
        deployment = load(path)
    except DeploymentError as exc:
        raise RuntimeError(
            f"{RPC_ENV} is set but there is no perpool deployment to fork: {exc} "
            f"(deploy with `ape run deploy --network ethereum:sepolia:node --account ... --token ...`, "
            f"or point {DEPLOYMENT_ENV} at its deployment file)"
        ) from exc
    if deployment.chain_id != SEPOLIA:
        raise RuntimeError(f"{path} is for chain {deployment.chain_id}, not Sepolia ({SEPOLIA})")
    return Upstream(url, path, deployment)


def _free_port() -> int:
    low, high = STANDIN_PORTS
    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {low}-{high}")


def start_standin(log_path: Path, mnemonic: str, attempts: int = 5) -> tuple[subprocess.Popen, str]:
    """Anvil with Sepolia's chain id on a free loopback port, mining every
    STANDIN_DEPLOY_BLOCK_TIME s and each transaction at once; (the process, its URL)."""
    for _ in range(attempts):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [find_anvil(), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(SEPOLIA),
             "--block-time", STANDIN_DEPLOY_BLOCK_TIME, "--mixed-mining",
             "--mnemonic", mnemonic, "--accounts", "10"],
            stdout=log_path.open("a"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if int(rpc(url, "eth_chainId", timeout=1), 16) == SEPOLIA:
                    return process, url
            except OSError:
                time.sleep(0.05)
        stop_process(process)  # exited (the port was taken after all) or never answered: again
    raise RuntimeError(f"the stand-in Anvil did not start in {attempts} attempts; see {log_path}")


def deploy_standin(url: str) -> Deployment:
    """perpool on the stand-in through Ape's `ethereum:sepolia` network, as `ape run deploy`
    deploys off a local network (direct fills off, no updaters, no seeded prices), then an
    operator's first steps: a price keeper (dev account 8, also an order keeper) pushes the
    first prices and dev account 7 is the first LP."""
    from ape import accounts, chain, networks, project

    sepolia = networks.ethereum.sepolia
    block_time = sepolia.config.block_time
    # Ape waits for Sepolia's confirmations polling every block_time / 2 s (15 s configured):
    # the stand-in mines every 0.1 s now, so poll without sleeping while this deploy runs.
    sepolia.config.block_time = 1
    try:
        with networks.parse_network_choice(f"ethereum:sepolia:{url}", disconnect_after=True):
            assert chain.chain_id == SEPOLIA and networks.provider.network.name == "sepolia"
            deployer, keeper, lp = (accounts.test_accounts[i] for i in (0, 8, 7))
            token = deploy_token(project, deployer)
            protocol = deploy_protocol(
                project, deployer, token, markets=params.LOCAL_MARKETS, updaters=(),
                seed_prices=False, chain=chain, direct_fills=False,
                # LP flows stay direct (a public deploy takes LP orders only): the fork suite
                # deposits as an upstream deployed before LP orders would let it; LP orders
                # are tested on the local chain (tests/unit/perp/test_lp_orders.py, e2e, keepers)
                direct_lp=True,
            )
            protocol.oracle.set_updater(keeper, True, sender=deployer)
            protocol.orders.set_keeper(keeper, True, sender=deployer)
            ids = [protocol.markets[name] for name in params.LOCAL_MARKETS]
            protocol.oracle.set_prices(
                ids, list(params.LOCAL_MARKETS.values()), chain.blocks.head.timestamp, sender=keeper
            )
            amount = STANDIN_POOL_USD * UNIT
            token.mint(lp, amount, sender=lp)
            token.approve(protocol.vault.address, amount, sender=lp)
            protocol.vault.deposit(amount, 0, lp, sender=lp)
            return Deployment(
                network="sepolia",
                chain_id=chain.chain_id,
                deploy_block=protocol.deploy_block,
                contracts=protocol.addresses(),
                markets=protocol.markets,
                feeds={name: str(feed.address) for name, feed in protocol.feeds.items()},
            )
    finally:
        sepolia.config.block_time = block_time


@contextmanager
def standin_upstream(workdir: Path, mnemonic: str, data_folder: Path) -> Iterator[Upstream]:
    """The stand-in, deployed to (with Ape's data folder at `data_folder` meanwhile), for
    the duration of the context; stopped after."""
    process, url = start_standin(workdir / "anvil.log", mnemonic)
    try:
        with ape_data_folder(data_folder):
            deployment = deploy_standin(url)
        rpc(url, "evm_setIntervalMining", [STANDIN_BLOCK_TIME])
        yield Upstream(url, save(deployment, workdir / "sepolia.json"), deployment, process)
    finally:
        stop_process(process)


@contextmanager
def ape_data_folder(path: Path) -> Iterator[None]:
    """Ape's data folder at `path` for the duration, inside `ape_globals_restored`. Ape
    caches contract types and deployments of live networks on disk, forks included (under
    the upstream's name): the stand-in's Sepolia addresses must not land in
    ~/.ape/ethereum/sepolia."""
    from ape.utils.basemodel import ManagerAccessMixin

    with ape_globals_restored():
        ManagerAccessMixin.config_manager.DATA_FOLDER = path
        yield


#: Ape objects memoised on first use from the data folder of the moment (the keyfile
#: accounts' container, the record of running nodes): built inside, dropped on the way out.
_FOLDER_BOUND = (("account_manager", "containers"), ("network_manager", "running_nodes"))


@contextmanager
def ape_globals_restored() -> Iterator[None]:
    """The process-wide state the fork suite changes, as it was on entry, whatever happens
    inside: the environment and the working directory; Ape's data folder and what Ape
    memoises under it (per-network contract caches, the deployments map, `_FOLDER_BOUND`);
    the active provider and Ape's class-level registry of connections (connecting a fork
    also connects its upstream and leaves that connection open: it is closed); the
    ethereum networks' settings (the deploy lowers Sepolia's `block_time`, the fork
    provider writes its upstream into `sepolia-fork`'s config); Ape's snapshot ids of
    chains that were not known on entry. Later suites in the session see none of it."""
    from ape.api.networks import ProviderContextManager as Connections
    from ape.managers._contractscache import ContractCache
    from ape.utils.basemodel import ManagerAccessMixin as ape

    env = dict(os.environ)
    cwd = os.getcwd()
    config, networks, chain = ape.config_manager, ape.network_manager, ape.chain_manager
    data_folder = config.DATA_FOLDER
    active = networks.active_provider
    connected, stack = dict(Connections.connected_providers), list(Connections.provider_stack)
    disconnect_map = dict(Connections.disconnect_map)
    network_configs = [
        (net.config, {name: getattr(net.config, name) for name in type(net.config).model_fields})
        for net in networks.ethereum.networks.values()
    ]
    caches = {
        eco: {net: dict(kinds) for net, kinds in nets.items()} for eco, nets in ContractCache._caches.items()
    }
    deployments = chain.contracts.deployments
    deployment_maps = set(deployments._deployments)
    bound = {(owner, attr) for owner, attr in _FOLDER_BOUND if attr in vars(getattr(ape, owner))}
    chains = set(chain._snapshots)
    try:
        yield
    finally:
        for key in set(os.environ) - set(env) - {"PYTEST_CURRENT_TEST"}:
            del os.environ[key]
        for key, value in env.items():
            if key != "PYTEST_CURRENT_TEST" and os.environ.get(key) != value:
                os.environ[key] = value
        os.chdir(cwd)
        for connection_id, provider in list(Connections.connected_providers.items()):
            if connection_id not in connected and provider.is_connected:
                provider.disconnect()
        Connections.connected_providers.clear()
        Connections.connected_providers.update(connected)
        Connections.provider_stack[:] = stack
        Connections.disconnect_map.clear()
        Connections.disconnect_map.update(disconnect_map)
        networks.active_provider = active
        for network_config, fields in network_configs:
            for name, value in fields.items():
                if getattr(network_config, name) != value:
                    setattr(network_config, name, value)
        config.DATA_FOLDER = data_folder
        ContractCache._caches.clear()
        ContractCache._caches.update(caches)
        for key in set(deployments._deployments) - deployment_maps:
            del deployments._deployments[key]
        for owner, attr in set(_FOLDER_BOUND) - bound:
            vars(getattr(ape, owner)).pop(attr, None)
        for chain_id in set(chain._snapshots) - chains:
            del chain._snapshots[chain_id]


# ---------------------------------------------------------------- the upstream, unchanged


@dataclass(frozen=True)
class UpstreamState:
    """What a transaction of the fork would change upstream. `accounts`: per watched
    address, everything it could have moved (nonce, ETH, tokens, LP shares, credits,
    roles, positions). `chain`: on the stand-in only (a public network also changes by
    other people's hands), every contract's code and first storage slots and the pool's
    totals."""

    accounts: dict[str, Any]
    chain: dict[str, Any] | None

    @classmethod
    def read(cls, upstream: Upstream, watched: list[str], block: int | str = "latest") -> "UpstreamState":
        tag = hex(block) if isinstance(block, int) else block
        perp, vault, orders, oracle, token = (
            upstream.contract(n) for n in ("Perp", "Vault", "OrderBook", "Oracle", "Token")
        )
        markets = sorted(upstream.deployment.markets.values())
        sides = [(m, side) for m in markets for side in (True, False)]
        calls = {"block_identifier": block}
        accounts: dict[str, Any] = {}
        for address in watched:
            a = Web3.to_checksum_address(str(address))
            nonce, balance = rpc_batch(
                upstream.url, [("eth_getTransactionCount", [a, tag]), ("eth_getBalance", [a, tag])]
            )
            accounts[a] = {
                "nonce": int(nonce, 16),
                "eth": int(balance, 16),
                "tokens": token.functions.balanceOf(a).call(**calls),
                "shares": vault.functions.balanceOf(a).call(**calls),
                "claimable": vault.functions.claimable(a).call(**calls),
                "order_keeper": orders.functions.keepers(a).call(**calls),
                "price_updater": oracle.functions.updaters(a).call(**calls),
                "positions": [perp.functions.get_position(a, m, side).call(**calls) for m, side in sides],
            }
        chain = None
        if upstream.standin:
            contracts = upstream.deployment.contracts
            addresses = list(contracts.values())
            slots = rpc_batch(
                upstream.url, [("eth_getStorageAt", [a, hex(slot), tag]) for a in addresses for slot in range(16)]
            )
            codes = rpc_batch(upstream.url, [("eth_getCode", [a, tag]) for a in addresses])
            chain = {
                "code": {name: keccak(hexstr=code).hex() for name, code in zip(contracts, codes)},
                "storage": dict(zip([f"{n}[{s}]" for n in contracts for s in range(16)], slots)),
                "pool": [
                    vault.functions.totalSupply().call(**calls),
                    vault.functions.pool_amount().call(**calls),
                    vault.functions.escrow_amount().call(**calls),
                    vault.functions.claimable_amount().call(**calls),
                    token.functions.balanceOf(vault.address).call(**calls),
                    orders.functions.next_order_id().call(**calls),
                ],
                "prices": [oracle.functions.price_data(m).call(**calls) for m in markets],
                "open_interest": [perp.functions.open_interest(m, side).call(**calls) for m, side in sides],
            }
        return cls(accounts, chain)


def fork_tx_hashes(fork_url: str, since_block: int) -> list[str]:
    """Every transaction in the fork's blocks after `since_block`."""
    head = int(rpc(fork_url, "eth_blockNumber"), 16)
    numbers = range(since_block + 1, head + 1)
    blocks = rpc_batch(fork_url, [("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
    return [tx for block in blocks for tx in block["transactions"]]


def assert_upstream_untouched(upstream: Upstream, before: UpstreamState, watched: list[str],
                              fork_url: str, fork_block: int) -> list[str]:
    """The upstream after the fork's transactions is as `before` (read with the same
    `watched`), none of those transactions is known upstream and, on the stand-in, no
    block since the fork point holds any transaction. Returns the fork's transactions."""
    hashes = fork_tx_hashes(fork_url, fork_block)
    assert hashes, "the test sent nothing on the fork"
    after = upstream.state(watched)
    assert after.accounts == before.accounts
    assert after.chain == before.chain
    known = rpc_batch(upstream.url, [("eth_getTransactionByHash", [h]) for h in hashes])
    assert known == [None] * len(hashes), "a transaction sent on the fork reached the upstream"
    if upstream.standin:  # the upstream mined on, and never a transaction
        head = upstream.head()
        numbers = range(fork_block + 1, head + 1)
        counts = rpc_batch(upstream.url, [("eth_getBlockTransactionCountByNumber", [hex(n)]) for n in numbers])
        assert all(int(c, 16) == 0 for c in counts)
    return hashes


# ---------------------------------------------------------------- on the fork

_INDEX = itertools.count(1_000)


def fresh_account(accounts: Any, provider: Any, eth: int = 10) -> Any:
    """A new random key as an Ape test account, with `eth` ETH on the fork only: an address
    nobody uses upstream (Anvil's dev keys are public and busy on Sepolia)."""
    key = Account.create()
    account = accounts.init_test_account(next(_INDEX), key.address, Web3.to_hex(key.key))
    provider.set_balance(account.address, eth * 10**18)
    return account


def deal(provider: Any, token: Any, account: Any, dollars: int) -> int:
    """Set `account`'s balance of the pool's stablecoin to `dollars` on the fork (Anvil's
    `anvil_dealERC20` finds any ERC-20's balance slot: no minter role needed); the amount in
    token units."""
    amount = dollars * 10 ** int(token.decimals())
    provider.make_request("anvil_dealERC20", [str(account.address), str(token.address), hex(amount)])
    assert token.balanceOf(account) == amount
    return amount


def deposit(protocol: Any, chain: Any, lp: Any, dollars: int) -> tuple[int, int, int | None]:
    """`lp` deposits `dollars`, dealt on the fork; (the amount, the shares minted, the
    shares the Vault's formula gives for an existing pool: None for an empty one)."""
    vault = protocol.vault
    amount = deal(chain.provider, protocol.token, lp, dollars)
    protocol.token.approve(vault, amount, sender=lp)
    chain.pending_timestamp = chain.blocks.head.timestamp  # the pool's value as the views read it
    fee = -(-amount * vault.mint_fee_bps() // BPS)  # rounded up
    net_wad = (amount - fee) * vault.token_scale()
    supply = vault.totalSupply()
    expected = net_wad * supply // vault.pool_value(True) if supply else None  # rounded down
    shares = vault.deposit(amount, 0, lp, sender=lp).return_value
    return amount, shares, expected


def ensure_prices(protocol: Any, chain: Any, updater: Any) -> None:
    """A first price on the fork for every market the upstream never priced (a fresh
    public deploy seeds none): the params' seed price, or $1,000 for a market they lack."""
    names = {m: name for name, m in protocol.markets.items()}
    missing = [m for m in sorted(names) if protocol.oracle.price_data(m).price == 0]
    if missing:
        t = pin_next(chain)
        prices = [params.LOCAL_MARKETS.get(names[m], 1_000 * WAD) for m in missing]
        protocol.oracle.set_prices(missing, prices, t, sender=updater)


def pin_next(chain: Any, after: int = 0) -> int:
    """Pin the next block's timestamp one second after the head (and after `after`)."""
    t = max(chain.blocks.head.timestamp, after) + 1
    chain.pending_timestamp = t
    return t


def push_and_execute(
    protocol: Any, chain: Any, keeper: Any, market: int, price: int, order_ids: list[int]
) -> Any:
    """The keeper's push-and-execute: `price` observed in the next block (pinned after the
    head and the stored observation, so newer than any order placed before)."""
    t = pin_next(chain, protocol.oracle.price_timestamp(market))
    return protocol.orders.execute_orders_with_prices([market], [price], t, order_ids, keeper, sender=keeper)
