def test_oracle_push_and_read(oracle, keeper, chain):
    now = chain.pending_timestamp
    oracle.set_prices([1], [3000 * 10**18], now, sender=keeper)
    assert oracle.get_price(1, True) == 3000 * 10**18
