"""perpool in `ape console`: the deployed contracts and helpers for a person at the prompt
(perpool/console.py). Start a devnet first (`make devnet ARGS=--keep`), then
`APE_FOUNDRY_HOST=http://127.0.0.1:8545 ape console --network ethereum:local:foundry`."""


def ape_init_extras() -> dict:
    from perpool.console import load

    return load()
