"""The shared chain client against a real Anvil: connecting, refusing a wrong chain or a
stale deployment file with a clear message, reading, and simulate-then-send."""

from __future__ import annotations

import json
import socket

import pytest

from keepers.chain import Chain, ChainError
from keepers.settings import SettingsError, load_settings

from conftest import KEEPER_KEY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chain__deployed_protocol__connects_with_every_contract(settings, log, metrics, protocol, keeper_account):
    chain = Chain(settings, log, metrics)
    assert chain.account.address == keeper_account.address
    assert chain.perp.address == protocol.perp.address
    assert chain.oracle.address == protocol.oracle.address
    assert {"Perp", "Vault", "Oracle", "Configurator", "RiskEngine", "PerpReader", "Token"} <= set(chain.contracts)
    assert chain.head() >= protocol.deploy_block
    assert metrics.get("last_block") == chain.head()
    assert chain.call(chain.perp.functions.is_market(protocol.markets["ETH"]))


def test_chain__wrong_chain_id__refused_with_both_ids(settings, log, metrics):
    bad = settings.model_copy(update={"chain_id": 5})
    with pytest.raises(ChainError, match="chain 31337, the settings expect 5"):
        Chain(bad, log, metrics)


def test_chain__deployment_of_another_chain__refused(settings, log, metrics, tmp_path):
    data = json.loads(settings.deployment.read_text())
    data["chain_id"] = 11155111
    other = tmp_path / "sepolia.json"
    other.write_text(json.dumps(data))
    with pytest.raises(ChainError, match="is for chain 11155111"):
        Chain(settings.model_copy(update={"deployment": other}), log, metrics)


def test_chain__deployment_without_code__refused_as_stale(settings, log, metrics, tmp_path):
    data = json.loads(settings.deployment.read_text())
    data["contracts"]["Perp"] = "0x000000000000000000000000000000000000dEaD"
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(data))
    with pytest.raises(ChainError, match="does not match this chain"):
        Chain(settings.model_copy(update={"deployment": stale}), log, metrics)


def test_chain__missing_deployment__refused(settings, log, metrics, tmp_path):
    with pytest.raises(ChainError, match="no deployment file"):
        Chain(settings.model_copy(update={"deployment": tmp_path / "none.json"}), log, metrics)


def test_chain__unreachable_rpc__refused_after_retries(settings, log, metrics):
    dead = f"http://127.0.0.1:{_free_port()}"
    bad = settings.model_copy(update={"rpc_urls": [dead], "rpc_retries": 1})
    with pytest.raises(ChainError, match="no RPC answers"):
        Chain(bad, log, metrics)
    assert metrics.get("rpc_errors") == 2


def test_chain__dead_first_url__falls_back_to_the_second(settings, log, metrics, rpc_url):
    dead = f"http://127.0.0.1:{_free_port()}"
    chain = Chain(settings.model_copy(update={"rpc_urls": [dead, rpc_url]}), log, metrics)
    assert chain.url == rpc_url and chain.chain_id == 31337
    assert metrics.get("rpc_errors") == 1


def test_send__price_push__mined_and_logged(settings, log, metrics, protocol, chain):
    client = Chain(settings, log, metrics)
    eth = protocol.markets["ETH"]
    now = client.timestamp()
    fn = client.oracle.functions.set_prices([eth], [3_001 * 10**18], now + 1)
    sent = client.send(fn, "push")
    assert sent.status == 1 and sent.tx_hash and sent.gas_used > 0
    assert protocol.oracle.price_data(eth).price == 3_001 * 10**18


def test_send__refused_by_simulation__not_sent_with_the_reason(settings, log, metrics, protocol):
    client = Chain(settings, log, metrics)
    eth = protocol.markets["ETH"]
    stored = protocol.oracle.price_timestamp(eth)
    nonce_before = client.w3.eth.get_transaction_count(client.account.address)
    sent = client.send(client.oracle.functions.set_prices([eth], [3_000 * 10**18], stored), "push")
    assert sent.status == -1 and sent.tx_hash is None and "oracle:" in sent.reason
    assert client.w3.eth.get_transaction_count(client.account.address) == nonce_before


def test_settings__no_key_off_a_local_chain__refused():
    with pytest.raises(SettingsError, match="private_key or key_file is required"):
        load_settings().key(11155111)
    assert load_settings(private_key=KEEPER_KEY).key(11155111) == KEEPER_KEY


def test_chain__call_many__one_json_rpc_batch_and_a_revert_in_its_place(settings, log, metrics, protocol):
    chain = Chain(settings, log, metrics)
    eth, btc = protocol.markets["ETH"], protocol.markets["BTC"]
    fns = [chain.perp.functions.is_market(m) for m in (eth, btc, 99)]
    assert chain.call_many(fns, "pending") == [True, True, False]
    answers = chain.call_many([chain.oracle.functions.price_timestamp(eth),
                               chain.perp.functions.close_price(99, True)])  # unknown market: reverts
    assert answers[0] == chain.call(chain.oracle.functions.price_timestamp(eth))
    assert isinstance(answers[1], Exception)
    assert chain.call_many([]) == []


def test_send__stopped_while_waiting_for_a_receipt__returns_within_the_grace_and_records_it(
    settings, metrics, protocol, chain
):
    """Automine off: the push waits in the pool. A stop (SIGTERM sets `stopping`) cuts the
    wait to `shutdown_grace_s`: no replacement, the transaction recorded as abandoned with
    its nonce, and the nonce re-read next time. Mined later, it is the one that lands."""
    import io
    import threading
    import time

    from keepers.log import Log

    out = io.StringIO()
    own = settings.model_copy(update={"shutdown_grace_s": 1.0, "stuck_after_s": 30.0})
    client = Chain(own, Log("test", out), metrics)
    eth = protocol.markets["ETH"]
    fn = client.oracle.functions.set_prices([eth], [3_002 * 10**18], client.timestamp() + 1)
    nonce = client.w3.eth.get_transaction_count(client.account.address)
    result = {}
    chain.provider.make_request("evm_setAutomine", [False])
    try:
        worker = threading.Thread(target=lambda: result.update(sent=client.send(fn, "push")))
        worker.start()
        deadline = time.monotonic() + 15
        while '"event": "sent"' not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert '"event": "sent"' in out.getvalue()
        stopped_at = time.monotonic()
        client.stopping.set()
        worker.join(timeout=10)
        waited = time.monotonic() - stopped_at
    finally:
        chain.provider.make_request("evm_setAutomine", [True])
    assert not worker.is_alive()
    assert waited < 1.0 + 3.0  # the grace, plus one receipt poll and slack; not stuck_after_s (30 s)
    sent = result["sent"]
    assert sent.status == -2 and sent.reason == "stopped before a receipt"
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    (abandoned,) = [r for r in records if r["event"] == "abandoned_on_stop"]
    assert abandoned["txs"] == [sent.tx_hash] and abandoned["nonce"] == nonce
    assert not [r for r in records if r["event"] == "replace"]
    assert client._nonce is None  # re-read from the node on the next send
    chain.mine()
    receipt = client.w3.eth.get_transaction_receipt(sent.tx_hash)
    assert receipt["status"] == 1
    assert protocol.oracle.price_data(eth).price == 3_002 * 10**18
