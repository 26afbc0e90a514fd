"""Event builders for the unit tests: real pydantic records, built from dicts like the wire."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from counting import ApplyOutcome, ContactState, CountingConfig, apply_event, build_snapshot
from models.events import (
    BounceEvent,
    ClickEvent,
    ComplaintEvent,
    ContactDelete,
    ContactListAdded,
    ContactListRemoved,
    ContactSubscribe,
    ContactUpsert,
    DeliveryEvent,
    DispatchEvent,
    Event,
    OpenEvent,
    ReplyEvent,
    UnsubscribeEvent,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # a Monday
CFG = CountingConfig()
ORG = "org-1"
CONTACT = "contact-1"
_ids = itertools.count(1)


def ago(days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    return NOW - timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _base(at: datetime, eid: str | None) -> dict[str, Any]:
    return {
        "event_id": eid or f"evt-{next(_ids)}",
        "org_id": ORG,
        "contact_id": CONTACT,
        "occurred_at": at.isoformat(),
    }


def dispatch(
    mid: str, at: datetime, channel: str = "email", kind: str = "single", eid: str | None = None
) -> DispatchEvent:
    data = _base(at, eid) | {"channel": channel, "message_id": mid, "dispatch_kind": kind}
    return DispatchEvent.model_validate(data)


def delivery(mid: str, at: datetime, channel: str = "email", eid: str | None = None) -> Event:
    return DeliveryEvent.model_validate(_base(at, eid) | {"channel": channel, "message_id": mid})


def opened(mid: str, at: datetime, channel: str = "email", eid: str | None = None) -> Event:
    return OpenEvent.model_validate(_base(at, eid) | {"channel": channel, "message_id": mid})


def click(mid: str, at: datetime, channel: str = "email", eid: str | None = None) -> Event:
    return ClickEvent.model_validate(_base(at, eid) | {"channel": channel, "message_id": mid})


def machine_open(mid: str, at: datetime, channel: str = "email", eid: str | None = None) -> Event:
    """An open by a privacy proxy (SPEC §7.1)."""
    data = _base(at, eid) | {"channel": channel, "message_id": mid, "machine": True}
    return OpenEvent.model_validate(data)


def bot_click(mid: str, at: datetime, channel: str = "email", eid: str | None = None) -> Event:
    """A click the provider flags as a link scanner's (SPEC §7.1)."""
    data = _base(at, eid) | {"channel": channel, "message_id": mid, "bot": True}
    return ClickEvent.model_validate(data)


def bounce(
    mid: str, at: datetime, channel: str = "email", kind: str = "hard", eid: str | None = None
) -> Event:
    data = _base(at, eid) | {"channel": channel, "message_id": mid, "kind": kind}
    return BounceEvent.model_validate(data)


def soft_bounce(mid: str, at: datetime, channel: str = "email", eid: str | None = None) -> Event:
    return bounce(mid, at, channel, "soft", eid)


def complaint(mid: str, at: datetime, channel: str = "email", eid: str | None = None) -> Event:
    data = _base(at, eid) | {"channel": channel, "message_id": mid}
    return ComplaintEvent.model_validate(data)


def reply(mid: str, at: datetime, channel: str = "email", eid: str | None = None) -> Event:
    return ReplyEvent.model_validate(_base(at, eid) | {"channel": channel, "message_id": mid})


def unsubscribe(at: datetime, channel: str = "email", eid: str | None = None) -> Event:
    return UnsubscribeEvent.model_validate(_base(at, eid) | {"channel": channel})


def subscribe(at: datetime, channel: str = "email", eid: str | None = None) -> Event:
    return ContactSubscribe.model_validate(
        _base(at, eid) | {"type": "subscribe", "channel": channel}
    )


def upsert(at: datetime, eid: str | None = None, **fields: Any) -> Event:
    return ContactUpsert.model_validate(_base(at, eid) | {"type": "upsert"} | fields)


def delete(at: datetime, eid: str | None = None) -> Event:
    return ContactDelete.model_validate(_base(at, eid) | {"type": "delete"})


def list_added(
    at: datetime, list_id: str, name: str | None = None, eid: str | None = None
) -> Event:
    data = _base(at, eid) | {"type": "list_added", "list_id": list_id}
    if name is not None:
        data["list_name"] = name
    return ContactListAdded.model_validate(data)


def list_removed(at: datetime, list_id: str, eid: str | None = None) -> Event:
    data = _base(at, eid) | {"type": "list_removed", "list_id": list_id}
    return ContactListRemoved.model_validate(data)


def run(
    events: Iterable[Event],
    now: datetime = NOW,
    cfg: CountingConfig = CFG,
    state: ContactState | None = None,
) -> tuple[ContactState | None, list[ApplyOutcome]]:
    outcomes = []
    for event in events:
        outcome = apply_event(state, event, now, cfg)
        state = outcome.state
        outcomes.append(outcome)
    return state, outcomes


def snapshot_of(
    events: Iterable[Event], now: datetime = NOW, cfg: CountingConfig = CFG
) -> dict[str, Any] | None:
    state, _ = run(events, now, cfg)
    return build_snapshot(ORG, CONTACT, state, now, cfg)


def channel(snap: dict[str, Any] | None, name: str) -> dict[str, Any]:
    assert snap is not None
    figures: dict[str, Any] = snap["channels"][name]
    return figures


def rate_tier(engagement: dict[str, Any]) -> dict[str, Any]:
    """The rate and tier of an `engagement` object (its counts are checked where they matter)."""
    return {"rate": engagement["rate"], "tier": engagement["tier"]}
