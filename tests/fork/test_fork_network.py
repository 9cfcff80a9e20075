"""The fork itself: a node of its own (never the upstream's URL) taken at an upstream block,
serving perpool exactly as deployed upstream, and a place where even an admin's change
stays."""

from __future__ import annotations

import time

from hexbytes import HexBytes

from fork_scene import SEPOLIA, assert_upstream_untouched, endpoint, rpc, rpc_batch


def test_fork__rpc_url_is_its_own_anvil_forking_the_upstream(fork, upstream, networks, chain):
    provider = networks.provider
    assert (provider.network.name, provider.name) == ("sepolia-fork", "foundry")
    assert provider.uri == fork.url
    # a different node: without `host: auto` the provider would attach to whatever listens
    # on its configured host, and a "fork" test could run on the upstream itself
    assert endpoint(fork.url) != endpoint(upstream.url)
    assert endpoint(fork.url)[0] == "127.0.0.1"
    assert provider.process is not None and provider.process.poll() is None  # started by this run
    # that node forks the upstream...
    assert provider.fork_url == upstream.url
    assert fork.info["forkConfig"]["forkUrl"] == upstream.url
    assert int(rpc(fork.url, "eth_chainId"), 16) == int(rpc(upstream.url, "eth_chainId"), 16) == SEPOLIA
    assert chain.chain_id == SEPOLIA
    # ...at an upstream block: the same block, hash included
    on_fork, on_upstream = (
        rpc(url, "eth_getBlockByNumber", [hex(fork.block), False]) for url in (fork.url, upstream.url)
    )
    assert on_fork["hash"] == on_upstream["hash"]
    # a block mined on the fork is the fork's alone
    chain.mine()
    mined = rpc(fork.url, "eth_getBlockByNumber", ["latest", False])
    assert int(mined["number"], 16) > fork.block
    assert rpc(upstream.url, "eth_getBlockByHash", [mined["hash"], False]) is None
    # the upstream mines on by itself, other blocks than the fork's; the fork does not follow
    deadline = time.monotonic() + 30  # Sepolia: a block every 12 s; the stand-in: every second
    while upstream.head() <= fork.block and time.monotonic() < deadline:
        time.sleep(0.1)
    after_fork = [
        rpc(url, "eth_getBlockByNumber", [hex(fork.block + 1), False]) for url in (fork.url, upstream.url)
    ]
    assert None not in after_fork and after_fork[0]["hash"] != after_fork[1]["hash"]
    assert rpc(fork.url, "eth_blockNumber") == mined["number"]


def test_fork__reads_the_protocol_deployed_upstream(fork, upstream, fork_protocol, networks):
    d = upstream.deployment
    at = {"block_identifier": fork.block}
    # the code of every contract in the deployment file, as upstream
    codes = rpc_batch(upstream.url, [("eth_getCode", [a, hex(fork.block)]) for a in d.contracts.values()])
    for (name, address), code in zip(d.contracts.items(), codes):
        assert networks.provider.get_code(address) == HexBytes(code) != HexBytes(""), name
    # the wiring the deploy made
    p = fork_protocol
    assert (p.perp.oracle(), p.perp.vault(), p.perp.configurator()) == (
        d.contracts["Oracle"], d.contracts["Vault"], d.contracts["Configurator"])
    assert (p.perp.order_book(), p.perp.deleverager()) == (
        d.contracts["OrderBook"], d.contracts["RiskEngine"])
    assert (p.vault.token(), p.vault.pool_value_source()) == (d.contracts["Token"], d.contracts["Perp"])
    assert p.vault.controllers(d.contracts["Perp"]) and p.vault.controllers(d.contracts["OrderBook"])
    assert (p.orders.perp(), p.orders.oracle(), p.orders.vault()) == (
        d.contracts["Perp"], d.contracts["Oracle"], d.contracts["Vault"])
    assert p.oracle.updaters(d.contracts["OrderBook"])
    assert p.oracle.market_count() == len(d.markets)
    for name, market in d.markets.items():
        assert p.oracle.market_names(market) == name and p.perp.is_market(market)
        assert (p.feeds[name].oracle(), p.feeds[name].market()) == (d.contracts["Oracle"], market)
        # deployed as on a public network: every trade through the OrderBook
        assert p.perp.direct_fills(market) is False
    # the upstream's values at the fork block, read on the fork
    vault, orders, oracle = (upstream.contract(n) for n in ("Vault", "OrderBook", "Oracle"))
    assert p.vault.totalSupply() == vault.functions.totalSupply().call(**at)
    assert p.vault.pool_amount() == vault.functions.pool_amount().call(**at)
    assert p.orders.next_order_id() == orders.functions.next_order_id().call(**at)
    assert p.orders.min_execution_fee() == orders.functions.min_execution_fee().call(**at)
    for market in d.markets.values():
        assert tuple(p.oracle.price_data(market)) == tuple(oracle.functions.price_data(market).call(**at))
    if upstream.standin:  # what the stand-in's operator did after the deploy
        assert p.vault.pool_amount() > 0 and p.vault.totalSupply() > 0
        assert p.oracle.price_data(d.markets["ETH"]).price == 3_000 * 10**18


def test_fork__an_admins_change_stays_on_the_fork(fork, upstream, fork_protocol, accounts, fork_keeper):
    """Direct fills switched on by the Configurator's admin (impersonated): the fork's Perp
    has them, the upstream's does not."""
    market = fork_protocol.markets["ETH"]
    admin = accounts[fork_protocol.configurator.admin()]
    watched = [admin.address, fork_keeper.address]
    before = upstream.state(watched)

    fork_protocol.configurator.set_direct_fills(market, True, sender=admin)

    assert fork_protocol.perp.direct_fills(market) is True
    assert upstream.contract("Perp").functions.direct_fills(market).call() is False
    assert_upstream_untouched(upstream, before, watched, fork.url, fork.block)
