"""A deterministic mixed event stream for the exactness tests, and its reference figures.

The stream carries what real traffic carries: duplicates (the same record sent twice), local
disorder (interactions before their dispatch), records with no key or a foreign key,
unsubscribes, machine opens, bot clicks, bounces and complaints (SPEC §7). The reference
applies each distinct event once, in event-time order, with the pure counting core, which the
unit suite checks against a deliberately naive implementation.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from counting import CountingConfig, apply_event, build_snapshot
from models.events import parse_record

Record = tuple[str, bytes | None, dict[str, Any]]
CHANNELS = ("sms", "email", "whatsapp")


def _ts(now: datetime, days_ago: float) -> str:
    return (now - timedelta(days=days_ago)).isoformat()


def engagement_stream(
    org_id: str,
    contacts: int,
    messages: int,
    seed: int,
    now: datetime | None = None,
    *,
    rekeyed: bool = True,
) -> list[Record]:
    """`contacts` contacts with about `messages` messages each, shuffled locally.

    With `rekeyed`, about 8 % of the records carry no key or a foreign one, so the worker must
    re-key them through its internal topic.
    """
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    out: list[Record] = []
    n = 0

    def emit(topic: str, contact: str, value: dict[str, Any]) -> None:
        nonlocal n
        n += 1
        value = {
            "event_id": f"{org_id}-{contact}-{n}",
            "org_id": org_id,
            "contact_id": contact,
            **value,
        }
        roll = rng.random() if rekeyed else 1.0
        key: bytes | None = f"{org_id}:{contact}".encode()
        if roll < 0.05:
            key = None
        elif roll < 0.08:
            key = f"other-key-{n}".encode()
        out.append((topic, key, value))

    for c in range(contacts):
        contact = f"c{c:04d}"
        emit(
            "contact",
            contact,
            {
                "type": "upsert",
                "occurred_at": _ts(now, 70),
                "name": f"Contact {c}",
                "origin": {"type": "api"},
            },
        )
        if rng.random() < 0.2:
            emit(
                "unsubscribe",
                contact,
                {"channel": rng.choice(CHANNELS), "occurred_at": _ts(now, rng.uniform(1, 60))},
            )
        for i in range(rng.randint(max(1, messages // 2), messages * 3 // 2)):
            channel = rng.choice(CHANNELS)
            message_id = f"{contact}-m{i}"
            sent = rng.uniform(1, 60)
            base = {"channel": channel, "message_id": message_id}
            emit(
                "dispatch",
                contact,
                {
                    **base,
                    "occurred_at": _ts(now, sent),
                    "dispatch_kind": rng.choice(["single", "automated"]),
                },
            )
            later = sent - 0.01
            if rng.random() < 0.85:
                if rng.random() < 0.03:  # a soft bounce, then the retry got through (§7.2)
                    bounce = {**base, "kind": "soft", "occurred_at": _ts(now, sent - 0.005)}
                    emit("bounce", contact, bounce)
                emit("delivery", contact, {**base, "occurred_at": _ts(now, later)})
            elif rng.random() < 0.6:
                kind = rng.choice(["hard", "soft"])
                bounce = {**base, "kind": kind, "reason": "550 no such user"}
                emit("bounce", contact, {**bounce, "occurred_at": _ts(now, later)})
            if channel == "email" and rng.random() < 0.3:  # a privacy proxy's open (§7.1)
                emit("open", contact, {**base, "machine": True, "occurred_at": _ts(now, later)})
            if rng.random() < 0.08:  # a link scanner: flagged, or a second after the delivery
                scan = {**base, "occurred_at": _ts(now, later - 1 / 86_400)}
                emit("click", contact, {**scan, "bot": True} if rng.random() < 0.5 else scan)
            if channel == "email" and rng.random() < 0.03:  # reported as spam: unsubscribes
                emit("complaint", contact, {**base, "occurred_at": _ts(now, later - 0.05)})
            if channel != "sms" and rng.random() < 0.5:
                emit("open", contact, {**base, "occurred_at": _ts(now, later - 0.01)})
                if rng.random() < 0.3:  # the same message opened again
                    emit("open", contact, {**base, "occurred_at": _ts(now, later - 0.02)})
            if rng.random() < 0.2:
                emit(
                    "click",
                    contact,
                    {**base, "occurred_at": _ts(now, later - 0.03), "url": "https://example.com"},
                )
            if channel != "email" and rng.random() < 0.15:
                emit("reply", contact, {**base, "occurred_at": _ts(now, later - 0.04)})

    # local disorder: shuffle within small windows, so interactions may precede dispatches
    for start in range(0, len(out), 16):
        window = out[start : start + 16]
        rng.shuffle(window)
        out[start : start + 16] = window
    # duplicates: about 5 % of the records are sent again, later in the stream
    for record in rng.sample(out, k=len(out) // 20):
        out.insert(rng.randrange(len(out)), record)
    return out


def reference(
    records: list[Record], cfg: CountingConfig, now: datetime | None = None
) -> dict[tuple[str, str], dict[str, Any] | None]:
    """Figures from the distinct events, each applied once, in event-time order."""
    now = now or datetime.now(UTC)
    distinct: dict[str, Any] = {}
    import orjson

    for topic, _key, value in records:
        event = parse_record(topic, orjson.dumps(value), now, cfg)
        distinct.setdefault(event.event_id, event)
    states: dict[tuple[str, str], Any] = {}
    for event in sorted(distinct.values(), key=lambda e: (e.occurred_at, e.event_id)):
        key = (event.org_id, event.contact_id)
        states[key] = apply_event(states.get(key), event, now, cfg).state
    return {key: build_snapshot(key[0], key[1], state, now, cfg) for key, state in states.items()}
