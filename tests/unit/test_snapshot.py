from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from counting import CountingConfig, build_snapshot, tier_changes, tiers
from models.outputs import TierChange
from models.snapshot import Snapshot
from tests.unit.factories import (
    CFG,
    CONTACT,
    NOW,
    ORG,
    ago,
    click,
    delivery,
    dispatch,
    list_added,
    opened,
    reply,
    run,
    snapshot_of,
    unsubscribe,
    upsert,
)


def test_snapshot_dict_validates_against_the_api_model() -> None:
    snap = snapshot_of(
        [
            upsert(
                ago(3),
                name="Ana",
                phone="+5511999990000",
                email="ana@example.com",
                origin={"type": "csv", "file": "leads.csv"},
            ),
            list_added(ago(3), "L1", "VIP"),
            dispatch("a", ago(2)),
            opened("a", ago(1)),
            dispatch("b", ago(2), "sms"),
            unsubscribe(ago(1), "whatsapp"),
        ]
    )
    assert snap is not None
    model = Snapshot.model_validate(snap)
    assert model.registration.origin is not None
    assert model.registration.origin.label == "CSV Import - leads.csv"
    assert model.channels["email"].engagement.tier == "very_high"
    # it round-trips through JSON unchanged (what Redis stores)
    assert orjson.loads(orjson.dumps(snap)) == snap
    assert set(snap) == set(Snapshot.model_fields)


def test_snapshot_shape() -> None:
    snap = snapshot_of([dispatch("a", ago(2)), delivery("a", ago(2))])
    assert snap is not None
    assert snap["org_id"] == ORG and snap["contact_id"] == CONTACT
    assert snap["as_of"] == "2026-06-01T12:00:00Z" and snap["window_days"] == 90
    assert snap["lists"] == []
    assert snap["registration"] == {
        "name": None,
        "phone": None,
        "email": None,
        "contact_since": "2026-05-30T12:00:00Z",
        "origin": None,
    }


def test_snapshot_later_expires_messages_without_new_events() -> None:
    state, _ = run([dispatch("a", ago(89)), opened("a", ago(89)), dispatch("b", ago(10))])
    assert build_snapshot(ORG, CONTACT, state, NOW, CFG) is not None
    snap = build_snapshot(ORG, CONTACT, state, NOW + timedelta(days=2), CFG)
    assert snap is not None
    assert snap["dispatched"]["total"] == 1
    assert snap["engagement"]["tier"] is None


def test_best_send_times_by_hour_of_week_in_the_org_zone() -> None:
    cfg = CountingConfig(org_timezones={ORG: "America/Sao_Paulo"})
    monday_14_local = datetime(2026, 5, 25, 17, 0, tzinfo=UTC)  # 14:00 in São Paulo (UTC-3)
    tuesday_9_local = datetime(2026, 5, 26, 12, 30, tzinfo=UTC)
    events = [
        dispatch("a", monday_14_local - timedelta(hours=1), "whatsapp"),
        opened("a", monday_14_local, "whatsapp"),
        opened("a", tuesday_9_local, "whatsapp"),  # not the first open of "a": ignored
        click("a", monday_14_local + timedelta(minutes=5), "whatsapp"),
        dispatch("b", tuesday_9_local - timedelta(hours=1), "whatsapp"),
        reply("b", tuesday_9_local, "whatsapp"),
        dispatch("c", tuesday_9_local, "sms"),
        opened("c", tuesday_9_local, "sms"),  # sms does not track opens
    ]
    snap = snapshot_of(events, cfg=cfg)
    assert snap is not None
    whatsapp = snap["best_send_times"]["whatsapp"]
    assert whatsapp["timezone"] == "America/Sao_Paulo"
    assert whatsapp["top_hours"] == [
        {"weekday": "Mon", "hour": 14, "interactions": 2},
        {"weekday": "Tue", "hour": 9, "interactions": 1},
    ]
    assert whatsapp["weekly_frequency"] == 0.16  # 2 dispatches / (90 / 7) weeks = 0.1555…
    assert snap["best_send_times"]["sms"]["top_hours"] == []


def test_best_send_times_in_utc_by_default() -> None:
    sunday_23 = datetime(2026, 5, 31, 23, 30, tzinfo=UTC)
    snap = snapshot_of([dispatch("a", sunday_23), opened("a", sunday_23)])
    assert snap is not None
    hours = snap["best_send_times"]["email"]["top_hours"]
    assert hours == [{"weekday": "Sun", "hour": 23, "interactions": 1}]


def test_tiers_map_and_changes() -> None:
    before = snapshot_of([dispatch("a", ago(2)), dispatch("b", ago(2)), delivery("b", ago(2))])
    after = snapshot_of([dispatch("a", ago(2)), opened("a", ago(2))])
    assert tiers(before) == {None: ("no_engagement", 0.0), "email": ("no_engagement", 0.0)}
    assert tiers(after) == {None: ("very_high", 100.0), "email": ("very_high", 100.0)}
    assert tiers(None) == {}
    changes = tier_changes(ORG, CONTACT, tiers(before), tiers(after), "event", NOW)
    assert changes == [
        {
            "org_id": ORG,
            "contact_id": CONTACT,
            "channel": None,
            "previous_tier": "no_engagement",
            "tier": "very_high",
            "rate": 100.0,
            "changed_at": "2026-06-01T12:00:00Z",
            "cause": "event",
        },
        {
            "org_id": ORG,
            "contact_id": CONTACT,
            "channel": "email",
            "previous_tier": "no_engagement",
            "tier": "very_high",
            "rate": 100.0,
            "changed_at": "2026-06-01T12:00:00Z",
            "cause": "event",
        },
    ]
    for change in changes:
        TierChange.model_validate(change)


def test_first_delivery_is_a_change_from_no_tier() -> None:
    before = tiers(snapshot_of([dispatch("a", ago(2))]))
    assert before == {None: (None, None), "email": (None, None)}
    after = tiers(snapshot_of([dispatch("a", ago(2)), delivery("a", ago(2))]))
    changes = tier_changes(ORG, CONTACT, before, after, "event", NOW)
    assert [(c["channel"], c["previous_tier"], c["tier"]) for c in changes] == [
        (None, None, "no_engagement"),
        ("email", None, "no_engagement"),
    ]
    assert tier_changes(ORG, CONTACT, {}, before, "event", NOW) == []  # None -> None


def test_no_change_no_record_and_rate_moves_within_a_tier_are_silent() -> None:
    a = {None: ("low", 25.0), "sms": ("low", 25.0)}
    b = {None: ("low", 40.0), "sms": ("low", 30.0)}
    assert tier_changes(ORG, CONTACT, a, b, "event", NOW) == []


def test_expiry_to_no_tier_is_a_change() -> None:
    state, _ = run([dispatch("a", ago(89)), opened("a", ago(89))])
    before = tiers(build_snapshot(ORG, CONTACT, state, NOW, CFG))
    later = NOW + timedelta(days=2)
    after = tiers(build_snapshot(ORG, CONTACT, state, later, CFG))
    assert after == {None: (None, None), "email": (None, None)}  # still shown, no tier
    changes = tier_changes(ORG, CONTACT, before, after, "expiry", later)
    assert [(c["channel"], c["previous_tier"], c["tier"], c["cause"]) for c in changes] == [
        (None, "very_high", None, "expiry"),
        ("email", "very_high", None, "expiry"),
    ]
