"""The deployment file: `deployments/<network>.json`, written by the deploy script and read
by keepers and scripts. Plain JSON, so nothing here needs Ape."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENTS_DIR = ROOT / "deployments"
ABI_DIR = ROOT / "abi"


class DeploymentError(ValueError):
    """A deployment file that is missing, malformed or for another chain."""


@dataclass
class Deployment:
    network: str
    chain_id: int
    deploy_block: int
    contracts: dict[str, str]  # name -> address
    markets: dict[str, int] = field(default_factory=dict)  # name -> market id
    feeds: dict[str, str] = field(default_factory=dict)  # market name -> OracleFeed address

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> "Deployment":
        try:
            return cls(
                network=str(data["network"]),
                chain_id=int(data["chain_id"]),
                deploy_block=int(data["deploy_block"]),
                contracts={str(k): str(v) for k, v in data["contracts"].items()},
                markets={str(k): int(v) for k, v in data.get("markets", {}).items()},
                feeds={str(k): str(v) for k, v in data.get("feeds", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DeploymentError(f"malformed deployment: {exc!r}") from exc


def path_for(network: str, directory: Path = DEPLOYMENTS_DIR) -> Path:
    return directory / f"{network}.json"


def save(deployment: Deployment, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(deployment.to_json())
    tmp.replace(path)
    return path


def load(path: Path) -> Deployment:
    if not path.exists():
        raise DeploymentError(f"no deployment file at {path}: run the deploy script first")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DeploymentError(f"{path} is not valid JSON: {exc}") from exc
    return Deployment.from_dict(data)


def load_abi(name: str, directory: Path = ABI_DIR) -> list[dict]:
    """The committed ABI of contract `name` (e.g. "Oracle")."""
    path = directory / f"{name}.json"
    if not path.exists():
        raise DeploymentError(f"no ABI for {name} at {path}")
    return json.loads(path.read_text())
