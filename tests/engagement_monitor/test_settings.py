"""Settings: SPEC §6 names and defaults, and start-up refusal that names the setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engagement_monitor.settings import Settings, SettingsError, load_settings

SPEC_DEFAULTS = {
    "EM_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
    "EM_REDIS_URL": "redis://127.0.0.1:6379/0",
    "EM_TOPIC_PREFIX": "engagement.",
    "EM_APP_ID": "engagement-monitor",
    "EM_PARTITIONS": 8,
    "EM_DATA_DIR": Path("./var"),
    "EM_WORKER_WEB_PORT": 6066,
    "EM_EXPIRY_SWEEP_SECONDS": 3600,
    "EM_API_HOST": "127.0.0.1",
    "EM_API_PORT": 8080,
    "EM_API_TOKENS_FILE": Path("./var/tokens.json"),
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("EM_"):
            monkeypatch.delenv(name)


def test_spec_names_and_defaults() -> None:
    settings = load_settings()
    for env_name, default in SPEC_DEFAULTS.items():
        assert getattr(settings, env_name.removeprefix("EM_").lower()) == default, env_name


def test_every_spec_setting_is_read_from_its_env_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EM_PARTITIONS", "3")
    monkeypatch.setenv("EM_TOPIC_PREFIX", "t1.")
    monkeypatch.setenv("EM_EXPIRY_SWEEP_SECONDS", "5")
    monkeypatch.setenv("EM_API_TOKENS_FILE", "/tmp/x.json")
    settings = load_settings()
    assert (settings.partitions, settings.topic_prefix) == (3, "t1.")
    assert settings.expiry_sweep_seconds == 5
    assert settings.api_tokens_file == Path("/tmp/x.json")
    assert settings.topic("dispatch") == "t1.dispatch"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EM_PARTITIONS", "0"),
        ("EM_PARTITIONS", "many"),
        ("EM_WORKER_WEB_PORT", "70000"),
        ("EM_API_PORT", "-1"),
        ("EM_EXPIRY_SWEEP_SECONDS", "0"),
        ("EM_REDIS_URL", "http://localhost"),
        ("EM_KAFKA_BOOTSTRAP", "localhost"),
        ("EM_STORE", "postgres"),
        ("EM_DEFAULT_TIMEZONE", "Mars/Olympus"),
        ("EM_CHANNELS", "sms,Fax Machine"),
        ("EM_APP_ID", "has space"),
    ],
)
def test_bad_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert name in str(info.value)


def test_channel_metrics_must_cover_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EM_CHANNELS", "sms,telegram")
    with pytest.raises(SettingsError, match=r"EM_CHANNEL_METRICS.*telegram"):
        load_settings()
    monkeypatch.setenv("EM_CHANNEL_METRICS", '{"sms": ["delivery"], "telegram": ["open"]}')
    assert load_settings().channels == ("sms", "telegram")


def test_org_timezones_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EM_ORG_TIMEZONES", '{"acme": "America/Sao_Paulo"}')
    assert load_settings().org_timezones == {"acme": "America/Sao_Paulo"}
    monkeypatch.setenv("EM_ORG_TIMEZONES", '{"acme": "Nowhere/Land"}')
    with pytest.raises(SettingsError, match=r"EM_ORG_TIMEZONES.*Nowhere/Land"):
        load_settings()


def test_machine_event_settings_reach_the_counting_core(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_settings().counting_config()
    assert (cfg.bot_click_us, cfg.excludes_machine_events("acme")) == (2_000_000, True)
    monkeypatch.setenv("EM_BOT_CLICK_SECONDS", "0.5")
    monkeypatch.setenv("EM_EXCLUDE_MACHINE_EVENTS", "false")
    monkeypatch.setenv("EM_ORG_EXCLUDE_MACHINE_EVENTS", '{"acme": true}')
    cfg = load_settings().counting_config()
    assert cfg.bot_click_us == 500_000
    assert (cfg.excludes_machine_events("acme"), cfg.excludes_machine_events("other")) == (
        True,
        False,
    )
    monkeypatch.setenv("EM_BOT_CLICK_SECONDS", "-1")
    with pytest.raises(SettingsError, match=r"EM_BOT_CLICK_SECONDS"):
        load_settings()
    monkeypatch.setenv("EM_BOT_CLICK_SECONDS", "2")
    monkeypatch.setenv("EM_ORG_EXCLUDE_MACHINE_EVENTS", '{"acme": "sometimes"}')
    with pytest.raises(SettingsError, match=r"EM_ORG_EXCLUDE_MACHINE_EVENTS"):
        load_settings()


def test_cli_refuses_to_start_with_a_message_naming_the_setting() -> None:
    env = {"EM_PARTITIONS": "zero", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "engagement_monitor.cli", "config"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "EM_PARTITIONS" in result.stderr
    assert result.stdout == ""


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError for frozen
        settings.partitions = 3  # type: ignore[misc]
