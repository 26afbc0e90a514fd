"""The benchmark's event backlog: generated once, produced once, consumed by every scenario.

The shape is what a worker sees in production, not what flatters it: contacts interleave (each
message picks a random contact, records are ordered by *arrival* time, so two records of one
contact rarely share a batch), a share of records arrives late (interactions before their
dispatch), some records are sent twice (producer retries) and a few carry no key (they take the
re-key path). The reference figures come from the pure counting core applied to each distinct
event once, in event-time order — the same rule the unit and integration suites use — so a fast
but wrong pipeline fails the benchmark.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from counting import CountingConfig, apply_event, build_snapshot
from engagement_monitor.keyspace import record_key
from models.events import parse_record

CHANNELS = ("sms", "email", "whatsapp")
DAY = 86_400.0

# Funnel probabilities per message (the "event mix"); see `--mix`.
DEFAULT_MIX: dict[str, float] = {
    "delivery": 0.90,  # a dispatch is confirmed delivered
    "open": 0.45,  # a delivered e-mail / WhatsApp message is opened
    "reopen": 0.30,  # an opened message is opened again (same message, second event)
    "click": 0.35,  # an opened message is clicked
    "reply": 0.15,  # an opened message is answered
    "unsubscribe": 0.01,  # the contact unsubscribes from the channel just before a dispatch
    "upsert": 0.03,  # a profile upsert on the contact topic
}


@dataclass(frozen=True, slots=True)
class Record:
    """One produced record; `contact` indexes `Backlog.contacts` (for sampling the reference)."""

    topic: str  # short topic name
    key: bytes | None
    value: bytes
    contact: int


@dataclass(frozen=True)
class BacklogSpec:
    """What to generate. `messages` set: stop after that many messages, else at `events`."""

    events: int = 200_000
    contacts: int = 20_000
    orgs: int = 20
    messages: int | None = None
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    duplicate_rate: float = 0.03
    late_rate: float = 0.05
    keyless_rate: float = 0.01
    seed: int = 7
    org_prefix: str = "bench"
    # Message ids start after this: consecutive backlogs of one soak never reuse an id.
    first_message: int = 0


@dataclass
class Backlog:
    spec: BacklogSpec
    generated_at: datetime
    contacts: list[tuple[str, str]]  # index -> (org_id, contact_id)
    records: list[Record]
    messages: int

    def by_topic(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records:
            counts[record.topic] = counts.get(record.topic, 0) + 1
        return counts

    def duplicates(self) -> int:
        seen: set[bytes] = set()
        dup = 0
        for record in self.records:
            if record.value in seen:
                dup += 1
            seen.add(record.value)
        return dup

    def touched(self) -> set[int]:
        return {record.contact for record in self.records}


def parse_mix(text: str) -> dict[str, float]:
    """`delivery=0.9,open=0.4` -> the default mix with those entries replaced."""
    mix = dict(DEFAULT_MIX)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name not in DEFAULT_MIX:
            raise ValueError(f"--mix: {part!r}; expected NAME=P with NAME in {', '.join(mix)}")
        p = float(value)
        if not 0 <= p <= 1:
            raise ValueError(f"--mix: {name} must be between 0 and 1")
        mix[name] = p
    return mix


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def generate(spec: BacklogSpec, now: datetime | None = None) -> Backlog:
    """A deterministic (for a seed) backlog of about `spec.events` records."""
    rng = random.Random(spec.seed)
    now = now or datetime.now(UTC)
    now_ts = now.timestamp()
    contacts = [(f"{spec.org_prefix}-o{i % spec.orgs}", f"c{i:07d}") for i in range(spec.contacts)]
    mix = spec.mix
    pending: list[tuple[float, str, bytes | None, dict[str, Any], int]] = []
    target = round(spec.events / (1 + spec.duplicate_rate))
    messages = 0

    def add(topic: str, at: float, idx: int, **fields: Any) -> None:
        org, contact = contacts[idx]
        # Arrival = event time + a few seconds; a share arrives up to an hour late, so an open
        # or a delivery can reach the worker before its dispatch (local disorder).
        lag = rng.expovariate(1 / 5)
        if rng.random() < spec.late_rate:
            lag += 3600 * rng.random()
        value = {
            "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "org_id": org,
            "contact_id": contact,
            "occurred_at": _iso(at),
            **fields,
        }
        key: bytes | None = record_key(org, contact)
        if rng.random() < spec.keyless_rate:
            key = None
        pending.append((at + lag, topic, key, value, idx))

    while (spec.messages is None and len(pending) < target) or (
        spec.messages is not None and messages < spec.messages
    ):
        idx = rng.randrange(spec.contacts)
        messages += 1
        channel = rng.choice(CHANNELS)
        message_id = f"m{spec.first_message + messages}"
        base = {"channel": channel, "message_id": message_id}
        # Dispatches over the last 88 days (never older than the window, never in the future
        # even with their interactions one day later).
        sent = now_ts - rng.uniform(2 * DAY, 88 * DAY)
        if rng.random() < mix["unsubscribe"]:
            add("unsubscribe", sent - 10, idx, channel=channel)
        if rng.random() < mix["upsert"]:
            add(
                "contact",
                sent - 5,
                idx,
                type="upsert",
                name=f"Contact {idx}",
                phone=f"+55119{idx:08d}",
                origin={"type": "csv", "file": "leads.csv"},
            )
        add("dispatch", sent, idx, dispatch_kind=rng.choice(["single", "automated"]), **base)
        if rng.random() >= mix["delivery"]:
            continue
        add("delivery", sent + rng.uniform(1, 60), idx, **base)
        if rng.random() >= mix["open"]:
            continue
        opened = sent + rng.uniform(60, DAY / 2)
        if channel != "sms":
            add("open", opened, idx, **base)
            if rng.random() < mix["reopen"]:
                add("open", opened + 30, idx, **base)
        if rng.random() < mix["click"]:
            add("click", opened + 20, idx, url="https://example.com/p", **base)
        if channel != "email" and rng.random() < mix["reply"]:
            add("reply", opened + 90, idx, **base)

    pending.sort(key=lambda r: r[0])
    records = [Record(t, k, orjson.dumps(v), i) for _, t, k, v, i in pending]
    # Duplicates: the same record (same event_id, key and bytes) sent again a little later.
    extra = (
        spec.events - len(records)
        if spec.messages is None
        else round(len(records) * spec.duplicate_rate)
    )
    for i in sorted(rng.sample(range(len(records)), max(0, min(extra, len(records)))))[::-1]:
        records.insert(min(len(records), i + rng.randint(1, 2000)), records[i])
    return Backlog(spec, now, contacts, records, messages)


def sample_contacts(backlog: Backlog, n: int, seed: int = 11) -> list[int]:
    """`n` touched contacts (all of them for n <= 0), deterministic for a seed."""
    touched = sorted(backlog.touched())
    if n <= 0 or n >= len(touched):
        return touched
    return sorted(random.Random(seed).sample(touched, n))


def reference(
    records: Iterable[Record],
    contacts: Sequence[tuple[str, str]],
    only: set[int],
    cfg: CountingConfig,
    now: datetime | None = None,
) -> dict[tuple[str, str], dict[str, Any] | None]:
    """Snapshots of the contacts in `only`: distinct events, each once, in event-time order."""
    now = now or datetime.now(UTC)
    distinct: dict[str, Any] = {}
    for record in records:
        if record.contact in only:
            event = parse_record(record.topic, record.value, now, cfg)
            distinct.setdefault(event.event_id, event)
    states: dict[tuple[str, str], Any] = {contacts[i]: None for i in only}
    for event in sorted(distinct.values(), key=lambda e: (e.occurred_at, e.event_id)):
        key = (event.org_id, event.contact_id)
        states[key] = apply_event(states.get(key), event, now, cfg).state
    return {key: build_snapshot(key[0], key[1], state, now, cfg) for key, state in states.items()}


def figures(snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
    """What must be exact: everything but the time the snapshot was computed."""
    if snapshot is None:
        return None
    return {k: v for k, v in snapshot.items() if k != "as_of"}
