"""perpool's Python side shared by scripts, tests and keepers.

- `perpool.params`: the default on-chain settings a deploy starts from.
- `perpool.deployments`: reading and writing `deployments/<network>.json` (no Ape needed).
- `perpool.deploy`: deploying and wiring the contracts through Ape.
"""
