"""The deploy path the scripts use: wiring, the deployment file, the feed adapters."""

import json

import ape
import pytest

from perpool import params
from perpool.deploy import deploy_network
from perpool.deployments import DeploymentError, load


def test_deploy_network__local__wires_everything_and_writes_the_file(tmp_path, chain, deployer):
    out = tmp_path / "local.json"
    record, path = deploy_network(out=out)
    assert path == out
    data = json.loads(out.read_text())
    assert data["chain_id"] == chain.chain_id
    assert set(data["contracts"]) == {
        "Token", "Oracle", "Vault", "Perp", "Configurator", "RiskEngine", "PerpReader", "OrderBook"
    }
    assert data["markets"] == {"ETH": 1, "BTC": 2}
    assert load(out) == record

    oracle = ape.project.Oracle.at(data["contracts"]["Oracle"])
    vault = ape.project.Vault.at(data["contracts"]["Vault"])
    perp = ape.project.Perp.at(data["contracts"]["Perp"])
    assert vault.controllers(perp.address)
    assert vault.pool_value_source() == perp.address
    assert perp.oracle() == oracle.address and perp.vault() == vault.address
    configurator = ape.project.Configurator.at(data["contracts"]["Configurator"])
    risk = ape.project.RiskEngine.at(data["contracts"]["RiskEngine"])
    reader = ape.project.PerpReader.at(data["contracts"]["PerpReader"])
    assert perp.configurator() == configurator.address and configurator.perp() == perp.address
    assert perp.deleverager() == risk.address and risk.perp() == perp.address
    assert vault.pauser() == configurator.address and reader.perp() == perp.address
    assert oracle.updaters(deployer.address)
    orders = ape.project.OrderBook.at(data["contracts"]["OrderBook"])
    assert perp.order_book() == orders.address and orders.perp() == perp.address
    assert vault.controllers(orders.address) and oracle.updaters(orders.address)
    assert orders.keepers(deployer.address) and orders.vault() == vault.address
    assert orders.min_execution_fee() == params.MIN_EXECUTION_FEE
    assert not vault.lp_orders_only()  # a local devnet keeps direct LP flows on
    for name, market in data["markets"].items():
        assert perp.is_market(market)
        assert perp.direct_fills(market)  # a local devnet keeps direct fills on
        assert configurator.configs(market).max_leverage_bps == params.MARKET_CONFIG["max_leverage_bps"]
        risk_config = configurator.risk_configs(market)
        assert risk_config.insurance_cut_bps == params.RISK_CONFIG["insurance_cut_bps"]
        assert list(risk_config.tier_threshold_usd) == params.RISK_CONFIG["tier_threshold_usd"]
        # seeded price, readable through the Chainlink-style adapter with 8 decimals
        assert oracle.get_price(market, True) == params.LOCAL_MARKETS[name]
        feed = ape.project.OracleFeed.at(data["feeds"][name])
        assert feed.latestRoundData()[1] == params.LOCAL_MARKETS[name] // 10**10
        assert feed.decimals() == 8
    assert data["deploy_block"] <= chain.blocks.head.number


def test_load__missing_or_malformed_file__raises_a_clear_error(tmp_path):
    with pytest.raises(DeploymentError, match="run the deploy script"):
        load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DeploymentError, match="not valid JSON"):
        load(bad)
    partial = tmp_path / "partial.json"
    partial.write_text('{"network": "local"}')
    with pytest.raises(DeploymentError, match="malformed"):
        load(partial)
