"""`ape run deploy --account <alias>`: a keyfile account unlocked from the environment for a
non-interactive deploy, and the clear refusals (unknown alias, locked, wrong passphrase, no
funds). Each run is the real script against its own Anvil, with Ape's data folder (where
keyfile accounts live) in a temporary directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perpool.deployments import ROOT

APE = str(Path(sys.executable).parent / "ape")
ALIAS = "ci-deployer"
PASSPHRASE = "correct horse battery staple"
FUNDED_KEY = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba"  # Anvil dev account 5
EMPTY_KEY = "0x" + "42" * 32  # an account Anvil never funded
IMPORT = """
import sys
from ape_accounts import import_account_from_private_key
import_account_from_private_key(sys.argv[1], sys.argv[2], sys.argv[3])
"""


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ape-data")
    env = dict(os.environ, APE_DATA_FOLDER=str(folder))
    for alias, key in ((ALIAS, FUNDED_KEY), ("empty", EMPTY_KEY)):
        subprocess.run([sys.executable, "-c", IMPORT, alias, PASSPHRASE, key], cwd=ROOT, env=env, check=True, timeout=120)
    return folder


def _deploy(data_folder: Path, out: Path, alias: str, passphrase: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ, APE_DATA_FOLDER=str(data_folder))
    env.pop("APE_FOUNDRY_HOST", None)
    for key in [k for k in env if k.startswith("APE_ACCOUNTS_")]:
        env.pop(key)
    if passphrase is not None:
        env[f"APE_ACCOUNTS_{alias}_PASSPHRASE"] = passphrase
    return subprocess.run(
        [APE, "run", "deploy", "--network", "ethereum:local:foundry", "--account", alias, "--out", str(out)],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )


def test_deploy__account_unlocked_from_the_environment__deploys_and_writes_the_file(data_folder, tmp_path):
    out = tmp_path / "net.json"
    result = _deploy(data_folder, out, ALIAS, PASSPHRASE)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    record = json.loads(out.read_text())
    assert set(record["contracts"]) >= {"Perp", "Vault", "OrderBook"}
    assert f"written to {out}" in result.stdout


@pytest.mark.parametrize(
    "alias, passphrase, message",
    [
        ("nobody", PASSPHRASE, "no Ape account named 'nobody': add one with `ape accounts import nobody`"),
        (ALIAS, None, f"account '{ALIAS}' is locked: set APE_ACCOUNTS_{ALIAS}_PASSPHRASE"),
        (ALIAS, "wrong", f"cannot unlock account '{ALIAS}' with APE_ACCOUNTS_{ALIAS}_PASSPHRASE"),
        ("empty", PASSPHRASE, "has no funds on this network"),
    ],
    ids=["unknown-alias", "locked", "wrong-passphrase", "no-funds"],
)
def test_deploy__bad_account__clear_message_and_no_file(data_folder, tmp_path, alias, passphrase, message):
    out = tmp_path / "net.json"
    result = _deploy(data_folder, out, alias, passphrase)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]
    assert "Traceback" not in result.stderr
    assert not out.exists()
