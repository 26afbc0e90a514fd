"""What the worker hands the Redis script for the landing's heatmap and tier-change counts
(agents/org_index.py): pure, no Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from agents.org_index import (
    CHANGES_HORIZON_SECONDS,
    change_members,
    direction,
    heat_field,
    org_index,
    parse_heat_field,
)
from counting import ContactState, CountingConfig, apply_event, build_snapshot
from counting.send_times import Hours
from models.events import parse_record
from tests.read_api.support import sample_snapshot

NOW = datetime(2026, 6, 3, 12, tzinfo=UTC)


def test_heat_field_is_canonical_and_reads_back() -> None:
    hours = {"sms": {30: 1, 0: 0}, "email": {100: 2, 5: 1}}
    text = heat_field(hours)
    assert text == "email:5=1;email:100=2;sms:30=1"  # sorted, zeros left out
    assert heat_field({"email": {5: 1, 100: 2}, "sms": {30: 1}}) == text  # whatever the order
    assert parse_heat_field(text) == {"email": {5: 1, 100: 2}, "sms": {30: 1}}
    assert parse_heat_field("") == {}


def _row(
    days_ago: float, channel: str | None, previous: str | None, tier: str | None
) -> list[object]:
    at = (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")
    return [at, channel, previous, tier, 40.0, "event"]


def test_change_members_keep_the_overall_changes_of_the_last_7_days_by_direction() -> None:
    history = [
        _row(8, None, None, "low"),  # older than 7 days: not a member
        _row(6, None, "low", "high"),
        _row(2, "email", "high", "low"),  # a channel's: the landing counts the overall tier
        _row(1, None, "high", None),
    ]
    seconds = int(NOW.timestamp())
    up = f"{seconds - 6 * 86400:010d}|low|high"
    lost = f"{seconds - 86400:010d}|high|-"
    assert change_members(history, NOW) == (
        (f"chg:lost|{lost}", lost),  # newest first; the set is the field's part before `|`
        (f"chg:up|{up}", up),
    )
    assert change_members([_row(7.01, None, None, "low")], NOW) == ()
    assert CHANGES_HORIZON_SECONDS == 7 * 86400
    pairs = [(None, "low"), ("low", None), ("low", "high"), ("high", "low")]
    assert [direction(*p) for p in pairs] == ["new", "lost", "up", "down"]


def test_org_index_carries_heat_and_changes_only_when_given() -> None:
    snap = sample_snapshot("org", "c1")
    plain = org_index(snap)
    assert (plain.heat, plain.changes) == ("", ())
    full = org_index(snap, {"email": {3: 2}}, (("chg:up|x", "x"),))
    assert (full.heat, full.changes) == ("email:3=2", (("chg:up|x", "x"),))


def test_the_heat_is_the_histogram_best_send_times_come_from() -> None:
    """The worker's write carries exactly the hours the snapshot's top hours were taken from."""
    cfg = CountingConfig()
    state = ContactState()
    base = NOW - timedelta(days=3)
    for i in range(3):
        message = f"m{i}"
        sent = base + timedelta(hours=i * 25)
        for topic in ("dispatch", "delivery", "open"):
            record = {
                "event_id": f"{message}-{topic}",
                "org_id": "org",
                "contact_id": "c1",
                "message_id": message,
                "channel": "email",
                "occurred_at": (sent + timedelta(minutes=5 if topic == "open" else 0))
                .isoformat()
                .replace("+00:00", "Z"),
                **({"dispatch_kind": "single"} if topic == "dispatch" else {}),
            }
            event = parse_record(topic, orjson.dumps(record), NOW, cfg)
            apply_event(state, event, NOW, cfg)
    hours: Hours = {}
    snapshot = build_snapshot("org", "c1", state, NOW, cfg, hours)
    assert snapshot is not None
    assert sum(hours["email"].values()) == 3
    top = snapshot["best_send_times"]["email"]["top_hours"]
    assert sum(h["interactions"] for h in top) == 3
    # the same counts, placed in the same hours of week
    weekdays = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    assert {weekdays.index(h["weekday"]) * 24 + h["hour"]: h["interactions"] for h in top} == hours[
        "email"
    ]
