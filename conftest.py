"""Root conftest: put the npm-installed Anvil on PATH before Ape's Foundry provider starts."""

import os
from pathlib import Path

_BIN = Path(__file__).resolve().parent / "node_modules" / ".bin"
if str(_BIN) not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = f"{_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
