"""One small simulated stream shared by the simulator tests (generating it takes ~0.3 s)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from simulator import SimConfig, SimRecord, generate

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def sim_config() -> SimConfig:
    return SimConfig(orgs=3, contacts_per_org=150, messages_per_contact=14, seed=7, now=NOW)


@pytest.fixture(scope="session")
def sim_records(sim_config: SimConfig) -> list[SimRecord]:
    return list(generate(sim_config))
