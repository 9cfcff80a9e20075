"""Typed keeper settings, from the environment (prefix `PERPOOL_`) and an optional TOML file.

Every setting has a safe default for a local devnet; a bad value fails at start with a
message that names the setting (`SettingsError`), never later in a loop.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, InitSettingsSource, NoDecode, SettingsConfigDict

from perpool.deployments import ABI_DIR, DEPLOYMENTS_DIR

#: Anvil's first dev account (the deployer, an authorised price updater on a local deploy).
#: Only ever used when the chain is a local one (chain id 31337).
ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
LOCAL_CHAIN_IDS = (31337, 1337)


class SettingsError(ValueError):
    """A missing or bad setting: the message says which and why."""


class KeeperSettings(BaseSettings):
    """All keepers read the same settings; each uses the part it needs."""

    model_config = SettingsConfigDict(env_prefix="PERPOOL_", extra="forbid")

    # chain
    rpc_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8545"], min_length=1
    )  # PERPOOL_RPC_URLS="http://a,http://b": the second is the fallback
    chain_id: int | None = None  # expected chain id; None: whatever the deployment says
    deployment: Path = DEPLOYMENTS_DIR / "local.json"
    abi_dir: Path = ABI_DIR
    private_key: SecretStr | None = None
    key_file: Path | None = None  # a file holding the hex private key (mode 600)

    # transactions
    max_fee_gwei: int = Field(default=500, gt=0)  # never pay more per gas than this
    priority_fee_gwei: int = Field(default=1, ge=0)
    fee_bump_bps: int = Field(default=1_250, ge=1_000)  # +12.5 % per replacement (nodes need >= 10 %)
    stuck_after_s: float = Field(default=30.0, gt=0)  # replace a transaction not mined by then
    receipt_timeout_s: float = Field(default=120.0, gt=0)
    shutdown_grace_s: float = Field(default=10.0, ge=0)  # on SIGTERM: wait this long for a receipt
    rpc_retries: int = Field(default=5, ge=0)
    rpc_backoff_s: float = Field(default=0.5, gt=0)

    # loop
    poll_interval_s: float = Field(default=1.0, gt=0)
    failure_budget: int = Field(default=20, gt=0)  # consecutive failed ticks before giving up
    state_dir: Path = Path(".keeper-state")
    log_chunk_blocks: int = Field(default=2_000, gt=0)  # eth_getLogs range per request
    reorg_depth: int = Field(default=12, ge=0)  # blocks re-scanned after a restart or reorg
    metrics_port: int = Field(default=9464, ge=0, le=65_535)  # 0: no metrics server

    # price pusher
    source: Literal["random", "csv", "http"] = "random"
    check_source: Literal["none", "random", "csv", "http"] = "none"
    seed: int = 1
    csv_path: Path | None = None
    http_url: str | None = None
    check_http_url: str | None = None
    heartbeat_s: float = Field(default=60.0, gt=0)
    deviation_bps: int = Field(default=50, gt=0)  # push early when a price moved this much
    max_disagreement_bps: int = Field(default=100, gt=0)  # between the two sources
    max_source_age_s: float = Field(default=30.0, gt=0)
    split_large_moves: bool = True  # step a move beyond the Oracle's jump bound (off: alert and refuse)
    walk_step_bps: int = Field(default=20, ge=0, le=1_000)  # random walk: largest move per read
    walk_jump_bps: int = Field(default=500, ge=0, le=1_000)  # random walk: a jump's largest move
    walk_jump_every: int = Field(default=100, gt=0)  # random walk: a jump every this many reads
    http_timeout_s: float = Field(default=5.0, gt=0)

    # liquidator and ADL keeper
    batch_size: int = Field(default=100, gt=0, le=256)  # Perp.liquidate_batch takes 256 at most (~39k gas each)
    adl_max_per_tick: int = Field(default=10, gt=0)

    # order keeper
    order_batch_size: int = Field(default=64, gt=0, le=64)  # OrderBook.execute_orders takes 64 at most
    order_batches_per_tick: int = Field(default=8, gt=0)  # transactions per tick; the rest wait a tick
    order_status_batch: int = Field(default=100, gt=0, le=1_000)  # order_status calls per JSON-RPC batch
    order_retry_s: float = Field(default=30.0, gt=0)  # an order that failed alone waits this, doubling...
    order_retry_max_s: float = Field(default=3_600.0, gt=0)  # ...up to this
    orders_push_prices: bool = False  # `orders` alone also pushes prices (the pusher's source settings); `all` always does

    @field_validator("rpc_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [u.strip() for u in value.split(",") if u.strip()]
        return value

    @field_validator("rpc_urls")
    @classmethod
    def _http_only(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return value

    def key(self, chain_id: int) -> str:
        """The signing key: PERPOOL_PRIVATE_KEY, else the key file, else (on a local chain
        only) Anvil's first dev key."""
        if self.private_key is not None:
            return self.private_key.get_secret_value()
        if self.key_file is not None:
            if not self.key_file.exists():
                raise SettingsError(f"key_file: {self.key_file} does not exist")
            return self.key_file.read_text().strip()
        if chain_id in LOCAL_CHAIN_IDS:
            return ANVIL_DEV_KEY
        raise SettingsError("private_key or key_file is required off a local chain (PERPOOL_PRIVATE_KEY)")


def load_settings(path: Path | None = None, **overrides: Any) -> KeeperSettings:
    """Settings from `overrides` (e.g. CLI flags), over the environment, over a TOML file."""
    file_values: dict[str, Any] = {}
    if path is not None:
        if not path.exists():
            raise SettingsError(f"settings file {path} does not exist")
        try:
            file_values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"settings file {path}: {exc}") from exc

    class _Layered(KeeperSettings):
        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):  # type: ignore[override]
            return (init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=file_values))

    try:
        return KeeperSettings.model_validate(_Layered(**overrides).model_dump())
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"bad settings: {problems}") from exc
