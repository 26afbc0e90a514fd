"""The Kafka side with a fake producer, and the CLI entry (``--dry-run`` and a real run)."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

import pytest

import simulator.produce as produce_module
from engagement_monitor.settings import Settings
from simulator import SimConfig, SimRecord, build_orgs, generate, org_timezones
from simulator.cli import add_arguments, config_from_args, demo_records, run
from simulator.produce import SimStats, produce


class FakeProducer:
    """Collects what would have been sent; ``fail_every`` makes some deliveries fail."""

    def __init__(self, fail_every: int = 0) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.started = False
        self.stopped = False
        self.fail_every = fail_every

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> Awaitable[Any]:
        self.sent.append((topic, key, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_every and len(self.sent) % self.fail_every == 0:
            future.set_exception(RuntimeError("broker said no"))
        else:
            future.set_result(None)
        return future


@pytest.fixture
def small(sim_config: SimConfig) -> SimConfig:
    return replace(sim_config, contacts_per_org=15)


async def test_produce_sends_everything_with_the_prefix(small: SimConfig) -> None:
    records = list(generate(small))
    fake = FakeProducer()
    stats = await produce(
        records, "kafka:9092", "sim.", None, False, chunk=100, producer_factory=lambda _: fake
    )
    assert fake.started and fake.stopped
    assert [(t, k, v) for t, k, v in fake.sent] == [
        ("sim." + r.topic, r.key, r.value) for r in records
    ]
    assert stats.sent == len(records) and stats.failed == 0
    assert sum(stats.by_topic.values()) == sum(stats.by_kind.values()) == len(records)
    assert stats.by_kind["malformed"] == sum(r.kind == "malformed" for r in records)
    assert stats.rate > 0 and "records/s" in stats.render()


async def test_produce_counts_failures_and_keeps_going(small: SimConfig) -> None:
    records = list(generate(small))
    stats = await produce(
        records, "k:1", "", None, False, chunk=64, producer_factory=lambda _: FakeProducer(10)
    )
    assert stats.failed == len(records) // 10
    assert stats.sent + stats.failed == len(records)
    assert stats.errors == {"RuntimeError": stats.failed}


async def test_produce_paces_to_the_target_rate() -> None:
    records = [SimRecord("open", None, b"{}", "good")] * 300
    started = time.monotonic()
    stats = await produce(
        records, "k:1", "", 1_000.0, True, total=300, producer_factory=lambda _: FakeProducer()
    )
    elapsed = time.monotonic() - started
    assert 0.28 < elapsed < 2.0
    assert stats.rate < 1_100


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="engagement-monitor simulate")
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_options_map_to_the_config() -> None:
    args = _args(
        "--orgs", "2", "--contacts", "10", "--messages", "3", "--seed", "9", "--days", "30",
        "--malformed-share", "0.05", "--duplicate-share", "0", "--now", "2026-06-01T12:00:00Z",
    )  # fmt: skip
    config = config_from_args(args, Settings(window_days=60, max_record_bytes=1000))
    assert (config.orgs, config.contacts_per_org, config.messages_per_contact) == (2, 10, 3.0)
    assert (config.seed, config.days, config.window_days) == (9, 30, 60)
    assert (config.malformed_share, config.duplicate_share) == (0.05, 0.0)
    assert config.max_record_bytes == 1000 and config.now.isoformat() == "2026-06-01T12:00:00+00:00"
    with pytest.raises(SystemExit):
        _args("--malformed-share", "2")


def test_cli_dry_run_describes_without_kafka(capsys: pytest.CaptureFixture[str]) -> None:
    args = _args("--orgs", "2", "--contacts", "12", "--dry-run", "--now", "2026-06-01T12:00:00Z")
    assert run(args, Settings(kafka_bootstrap="nowhere.invalid:1")) == 0
    out = capsys.readouterr().out
    assert "by topic:" in out and "malformed by expected code" in out
    assert "EM_ORG_TIMEZONES=" in out and "enthusiast" in out


def test_cli_run_produces_through_the_producer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeProducer()
    seen: list[str] = []

    def factory(bootstrap: str, linger_ms: int = 20) -> FakeProducer:
        seen.append(bootstrap)
        return fake

    monkeypatch.setattr(produce_module, "kafka_producer", factory)
    args = _args("--orgs", "1", "--contacts", "8", "--no-progress")
    settings = Settings(kafka_bootstrap="broker:9092", topic_prefix="demo.")
    assert run(args, settings) == 0
    assert seen == ["broker:9092"]
    assert fake.sent and all(topic.startswith("demo.") for topic, _, _ in fake.sent)
    assert "produced" in capsys.readouterr().out


def test_sim_stats_rate_is_zero_before_time_passes() -> None:
    assert SimStats().rate == 0.0


def test_demo_records_produces_and_names_the_orgs(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeProducer()
    monkeypatch.setattr(produce_module, "kafka_producer", lambda *_a, **_k: fake)
    options = argparse.Namespace(orgs=2, contacts=6, no_progress=True, unrelated="x")
    orgs, produced = demo_records(Settings(), options)
    assert orgs == ["acme", "globex"]
    assert produced == len(fake.sent) > 0


def test_org_timezones_match_the_orgs(sim_config: SimConfig) -> None:
    config = replace(sim_config, orgs=7)
    zones = org_timezones(config.orgs)
    assert zones == {org.org_id: org.timezone for org in build_orgs(config)}
    assert zones["acme"] == "America/Sao_Paulo" and "acme-2" in zones
