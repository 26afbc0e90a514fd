"""Snapshots as the worker would build them from the simulator's stream, without Kafka: what the
snapshot dictionary is trained on (scripts/train_dictionary.py) and what its tests compress."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from counting import ContactState, CountingConfig, apply_event, build_snapshot
from models.events import RecordRejected, parse_record
from simulator.config import SimConfig
from simulator.stream import generate

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def simulated_snapshots(seed: int, contacts: int) -> list[bytes]:
    cfg = CountingConfig()
    orgs = 4
    states: dict[tuple[str, str], ContactState | None] = {}
    config = SimConfig(orgs=orgs, contacts_per_org=max(1, contacts // orgs), seed=seed, now=NOW)
    for record in generate(config):
        try:
            event = parse_record(record.topic, record.value, NOW, cfg)
        except RecordRejected:
            continue
        key = (event.org_id, event.contact_id)
        states[key] = apply_event(states.get(key), event, NOW, cfg).state
    out = []
    for (org_id, contact_id), state in states.items():
        snapshot = build_snapshot(org_id, contact_id, state, NOW, cfg)
        if snapshot is not None:
            out.append(orjson.dumps(snapshot))
    return out
