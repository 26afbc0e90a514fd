"""Every knob of the worker and the API, read from the environment (SPEC §6).

One pydantic-settings model so that a bad value is caught once, at start-up, with the name of the
environment variable the operator has to fix, instead of surfacing later as a confusing failure
deep inside Faust or Redis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from counting.config import CountingConfig

ENV_PREFIX = "EM_"

DEFAULT_CHANNELS: tuple[str, ...] = ("sms", "email", "whatsapp")
METRICS: tuple[str, ...] = ("delivery", "open", "click", "response")
DEFAULT_CHANNEL_METRICS: dict[str, tuple[str, ...]] = {
    "sms": ("delivery", "click", "response"),
    "email": ("delivery", "open", "click"),
    "whatsapp": ("delivery", "open", "click", "response"),
}


# Steps of the ingest and of a checkpoint where EM_CRASH_AT can kill the worker (tests only;
# the checkpoint's steps are described in agents/checkpoint.py).
CRASH_POINTS: tuple[str, ...] = (
    "ingest-after-send",
    "ingest-after-commit",
    "checkpoint-after-outputs",
    "checkpoint-after-changelog",
    "checkpoint-after-store",
    "checkpoint-after-redis",
    "checkpoint-before-ack",
)


MIB = 1024 * 1024


class SettingsError(ValueError):
    """A configuration value is unusable; the message names the environment variable."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    """Configuration of every process; field `x` is read from `EM_X`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, case_sensitive=False, extra="ignore", frozen=True
    )

    # --- SPEC §6, names and defaults to the letter ---
    kafka_bootstrap: str = Field("127.0.0.1:9092", min_length=1)
    redis_url: str = "redis://127.0.0.1:6379/0"
    # EM_REDIS_URL names any node of a Redis Cluster; every key of an org shares one slot.
    redis_cluster: bool = False
    topic_prefix: str = "engagement."
    app_id: str = Field("engagement-monitor", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(8, ge=1, le=1024)
    data_dir: Path = Path("./var")
    worker_web_port: int = Field(6066, ge=1, le=65535)
    expiry_sweep_seconds: float = Field(3600.0, gt=0)
    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, ge=1, le=65535)
    # API processes sharing the port (uvicorn's workers): the API is CPU-bound per request
    # (token check, one Redis GET, decompression), so one process per core serves the most.
    api_workers: int = Field(1, ge=1, le=64)
    api_tokens_file: Path = Path("./var/tokens.json")
    # SPEC §7.5: provider webhooks. `[{"org_id", "provider", "secret"}]`; see read_api/webhooks.
    webhook_secrets_file: Path = Path("./var/webhook-secrets.json")
    # SendGrid's signed timestamp may be this far from the API's clock (replays are refused).
    webhook_max_age_seconds: float = Field(600.0, gt=0, le=86_400)
    # The API's URL as the providers call it (scheme://host[:port]), when a proxy in front of
    # it changes the URL Twilio signs; unset: the URL of the request as received.
    webhook_public_url: str | None = Field(None, pattern=r"^https?://[^/?#]+$")
    # SPEC §7.1: machine opens and bot clicks.
    bot_click_seconds: float = Field(2.0, ge=0, le=86_400)
    exclude_machine_events: bool = True
    org_exclude_machine_events: dict[str, bool] = Field(default_factory=dict)

    # --- beyond the spec: documented in the README's settings table ---
    store: Literal["rocksdb", "memory"] = "rocksdb"
    worker_web_host: str = "127.0.0.1"
    standby_replicas: int = Field(0, ge=0, le=8)
    replication_factor: int = Field(1, ge=1, le=16)
    channels: Annotated[tuple[str, ...], NoDecode] = DEFAULT_CHANNELS
    channel_metrics: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_CHANNEL_METRICS)
    )
    window_days: int = Field(90, ge=1, le=3650)
    pending_max_per_contact: int = Field(200, ge=0)
    pending_max_seconds: int = Field(86400, ge=0)
    dedupe_max_per_contact: int = Field(256, ge=0)
    max_record_bytes: int = Field(65536, ge=256)
    future_tolerance_seconds: int = Field(300, ge=0)
    default_timezone: str = "UTC"
    org_timezones: dict[str, str] = Field(default_factory=dict)
    # Processes running the ingest stage beside the worker (0: inside the worker's event loop).
    ingest_processes: int = Field(1, ge=0, le=16)
    # Processes rendering and writing checkpoints' snapshots to Redis beside the worker, taking
    # the parts in turn (0: in the worker's own event loop; agents/snapshot_process.py).
    snapshot_processes: int = Field(2, ge=0, le=8)
    batch_max_records: int = Field(8000, ge=1)  # input records per ingest fetch
    # The longest the ingest and the agent wait to fill a batch when traffic is light.
    batch_max_seconds: float = Field(0.02, gt=0)
    batch_max_envelopes: int = Field(256, ge=1, le=4096)  # envelopes per applied batch
    # When a checkpoint lands (agents/engagement.py, `_checkpoint_due`): at once when the agent
    # has caught up, after the linger when it keeps up with a steady stream, and under a backlog
    # once this many entries are pending or the oldest has waited the max. The max is
    # quixstreams' default commit interval (Kafka Streams' is 30 s): under a backlog, each
    # written contact then carries more of its events (BENCHMARKS.md, session 12); the wait
    # stretches up to 4x while the latest entries fall on contacts already dirty
    # (agents/checkpoint_pace.py). The pending envelopes are held until their checkpoint
    # lands: ~300 B an entry, ~75 MB at the bound.
    checkpoint_linger_seconds: float = Field(0.02, gt=0, le=10.0)
    checkpoint_max_events: int = Field(250_000, ge=1)
    checkpoint_max_seconds: float = Field(5.0, gt=0, le=60.0)
    # How often committed envelopes are deleted (streams/envelope_purge.py); 0: never.
    envelope_purge_seconds: float = Field(30.0, ge=0)
    # Decoded contacts kept in memory between checkpoints (agents/contact_cache.py).
    state_cache_contacts: int = Field(100_000, ge=0)
    # ... and at most about this many MiB of them (estimated from their encoded sizes).
    state_cache_mb: int = Field(256, ge=0)
    # RocksDB memory per table partition (each partition is its own database): the memtable
    # size (two at most) and the block cache. Faust's defaults (3 x 64 MiB and 2 GiB) let a
    # worker of 8 partitions grow past a gigabyte under steady writes.
    rocksdb_write_buffer_mb: int = Field(8, ge=1, le=1024)
    rocksdb_block_cache_mb: int = Field(16, ge=1, le=65536)
    envelope_max_bytes: int = Field(900_000, ge=65536, le=16_777_216)
    # How long a silent worker keeps its partitions (both consumer groups): after a kill -9,
    # its partitions move only once this has passed. Kafka's floor is 6 s.
    session_timeout_seconds: float = Field(60.0, ge=6.0, le=300.0)
    # A Redis call that has not answered in this long counts as an outage (worker and API).
    redis_timeout_seconds: float = Field(5.0, gt=0, le=60.0)
    # Tests only: SIGKILL the worker the first time it reaches this step (see CRASH_POINTS).
    crash_at: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("channels", mode="before")
    @classmethod
    def _channels_csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("channels")
    @classmethod
    def _channels_valid(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one channel is required")
        for name in value:
            if not name.isidentifier() or name.lower() != name:
                raise ValueError(f"channel {name!r} must be a lower-case identifier")
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_valid(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_valid(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _tz_valid(cls, value: str) -> str:
        _check_zone(value)
        return value

    @field_validator("org_timezones")
    @classmethod
    def _org_tz_valid(cls, value: dict[str, str]) -> dict[str, str]:
        for org, zone in value.items():
            try:
                _check_zone(zone)
            except ValueError as exc:
                raise ValueError(f"org {org!r}: {exc}") from None
        return value

    @field_validator("crash_at")
    @classmethod
    def _crash_point_known(cls, value: str | None) -> str | None:
        if value is not None and value not in CRASH_POINTS:
            raise ValueError(f"unknown crash point; known: {', '.join(CRASH_POINTS)}")
        return value

    @model_validator(mode="after")
    def _linger_within_max(self) -> Settings:
        if self.checkpoint_linger_seconds > self.checkpoint_max_seconds:
            raise ValueError(
                "EM_CHECKPOINT_LINGER_SECONDS must not exceed EM_CHECKPOINT_MAX_SECONDS: "
                f"{self.checkpoint_linger_seconds} > {self.checkpoint_max_seconds}"
            )
        return self

    @model_validator(mode="after")
    def _envelope_holds_a_record(self) -> Settings:
        if self.envelope_max_bytes < self.max_record_bytes + 4096:
            raise ValueError(
                "EM_ENVELOPE_MAX_BYTES must exceed EM_MAX_RECORD_BYTES by at least 4096 "
                f"(an envelope must hold the largest record): {self.envelope_max_bytes} <= "
                f"{self.max_record_bytes} + 4096"
            )
        return self

    @model_validator(mode="after")
    def _metrics_cover_channels(self) -> Settings:
        for channel, metrics in self.channel_metrics.items():
            unknown = set(metrics) - set(METRICS)
            if unknown:
                raise ValueError(
                    f"EM_CHANNEL_METRICS: channel {channel!r} has unknown metrics "
                    f"{sorted(unknown)}; known: {', '.join(METRICS)}"
                )
        missing = [c for c in self.channels if c not in self.channel_metrics]
        if missing:
            raise ValueError(
                f"EM_CHANNEL_METRICS: no tracked metrics for channel(s) {', '.join(missing)}"
            )
        return self

    def counting_config(self) -> CountingConfig:
        """The pure counting core's view of the settings."""
        return CountingConfig(
            channels=self.channels,
            tracked={ch: frozenset(m) for ch, m in self.channel_metrics.items()},
            window_days=self.window_days,
            pending_max_per_contact=self.pending_max_per_contact,
            pending_max_seconds=self.pending_max_seconds,
            dedupe_max_per_contact=self.dedupe_max_per_contact,
            future_tolerance_seconds=self.future_tolerance_seconds,
            max_record_bytes=self.max_record_bytes,
            org_timezones=self.org_timezones,
            default_timezone=self.default_timezone,
            bot_click_seconds=self.bot_click_seconds,
            exclude_machine_events=self.exclude_machine_events,
            org_exclude_machine_events=self.org_exclude_machine_events,
        )

    def topic(self, name: str) -> str:
        """Full topic name: every topic carries the configured prefix (SPEC §2)."""
        return f"{self.topic_prefix}{name}"


def _check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, turning validation errors into one clear message.

    pydantic reports field names (`partitions`); operators set environment variables
    (`EM_PARTITIONS`), so the message speaks their language.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [str(part) for part in err["loc"]]
            field = loc[0] if loc else ""
            name = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
            msg = err["msg"].removeprefix("Value error, ")
            shown = err.get("input")
            suffix = (
                f" (got {shown!r})" if shown is not None and not isinstance(shown, dict) else ""
            )
            detail = f"{name}: {msg}{suffix}"
            if not field and msg.startswith(ENV_PREFIX):
                detail = msg
            lines.append(detail)
        raise SettingsError("invalid configuration: " + "; ".join(lines)) from None
