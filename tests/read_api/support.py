"""Helpers shared by the API tests: settings, tokens per role, and snapshots written straight into
Redis with the worker's layout (so API tests do not need a worker)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from agents.org_index import org_index
from agents.processor import SnapshotWrite
from agents.redis_sink import RedisSink
from engagement_monitor import keyspace as ks
from engagement_monitor.settings import Settings, load_settings
from engagement_monitor.snapshot_codec import pack_snapshot
from read_api.tokens import ROLES, create_token

ROLE_NAMES = ROLES


@dataclass(frozen=True)
class Tokens:
    """One token per role of one org."""

    org_id: str
    by_role: dict[str, str]

    def header(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.by_role[role]}"}


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    return load_settings(api_tokens_file=tmp / "tokens.json", **overrides)


def make_tokens(settings: Settings, org_id: str) -> Tokens:
    return Tokens(
        org_id, {role: create_token(settings, org_id, role, f"{role}@{org_id}") for role in ROLES}
    )


def sample_snapshot(org_id: str, contact_id: str, *, name: str = "Ana Souza") -> dict[str, Any]:
    """A snapshot shaped like the worker's (``counting.build_snapshot``)."""
    return {
        "org_id": org_id,
        "contact_id": contact_id,
        "as_of": "2026-06-01T12:00:00Z",
        "window_days": 90,
        "registration": {
            "name": name,
            "phone": "+5511999990000",
            "email": f"{contact_id}@example.com",
            "contact_since": "2026-01-10T09:00:00Z",
            "origin": {"type": "csv", "file": "leads.csv", "label": "CSV Import - leads.csv"},
        },
        "lists": [{"list_id": "vip", "name": "VIP customers"}],
        "channels": {
            "email": {
                "status": "subscribed",
                "dispatched": 10,
                "sending_errors": 0,
                "delivered": 9,
                "opened": 6,
                "clicked": 3,
                "replied": 0,
                "machine_opened": 4,
                "bot_clicked": 1,
                "bounced": 1,
                "hard_bounced": 1,
                "complained": 0,
                "rates": {
                    "delivery": 90.0,
                    "open": 66.67,
                    "click": 33.33,
                    "response": None,
                    "bounce": 10.0,
                    "complaint": 0.0,
                },
                "engagement": {
                    "rate": 66.67,
                    "tier": "high",
                    "engaged": 6,
                    "delivered": 9,
                    "last_engaged_at": "2026-05-20T09:15:00Z",
                },
            },
            "sms": {
                "status": "unsubscribed",
                "dispatched": 4,
                "sending_errors": 1,
                "delivered": 3,
                "opened": 0,
                "clicked": 0,
                "replied": 0,
                "machine_opened": 0,
                "bot_clicked": 0,
                "bounced": 0,
                "hard_bounced": 0,
                "complained": 0,
                "rates": {
                    "delivery": 75.0,
                    "open": None,
                    "click": 0.0,
                    "response": 0.0,
                    "bounce": 0.0,
                    "complaint": 0.0,
                },
                "engagement": {
                    "rate": 0.0,
                    "tier": "no_engagement",
                    "engaged": 0,
                    "delivered": 3,
                    "last_engaged_at": None,
                },
            },
        },
        "dispatched": {"total": 14, "by_channel": {"email": 10, "sms": 4}},
        "engagement": {
            "rate": 50.0,
            "tier": "high",
            "engaged": 6,
            "delivered": 12,
            "last_engaged_at": "2026-05-20T09:15:00Z",
        },
        "best_send_times": {
            "email": {
                "timezone": "UTC",
                "top_hours": [
                    {"weekday": "Tue", "hour": 9, "interactions": 4},
                    {"weekday": "Thu", "hour": 18, "interactions": 2},
                ],
                "weekly_frequency": 0.78,
            }
        },
    }


async def seed_contact(
    client: aioredis.Redis,
    org_id: str,
    contact_id: str,
    *,
    name: str = "Ana Souza",
    overall: tuple[str, float] = ("high", 50.0),
    per_channel: dict[str, tuple[str, float]] | None = None,
) -> dict[str, Any]:
    """Write a snapshot, its segment memberships and the org-wide figures through the worker's
    own Redis script (`agents.redis_sink`), as the worker would."""
    snap = sample_snapshot(org_id, contact_id, name=name)
    channels = per_channel if per_channel is not None else {"email": ("high", 66.67)}
    tiers: dict[str | None, tuple[str | None, float | None]] = {None: overall, **channels}
    write = SnapshotWrite(
        org_id,
        contact_id,
        time.time_ns() // 1000,  # increasing: a contact seeded again replaces the first
        pack_snapshot(orjson.dumps(snap)),
        tiers,
        org_index(snap),
    )
    await RedisSink("", "tests", client=client).apply([write])
    return snap


async def clear_org(client: aioredis.Redis, org_id: str) -> None:
    keys = [k async for k in client.scan_iter(match=ks.redis_org_pattern(org_id), count=500)]
    if keys:
        await client.delete(*keys)


def leaks(body: bytes, other_org: str, other_contacts: list[str]) -> list[str]:
    """Strings of another org that must never appear in an answer."""
    text = body.decode(errors="replace")
    return [s for s in [other_org, *other_contacts] if s in text]
