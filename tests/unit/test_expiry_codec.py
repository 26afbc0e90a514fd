from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from counting import apply_event, build_snapshot, decode, encode, expire, next_expiry
from counting.buckets import rebuild
from counting.timeutil import to_us
from tests.unit.factories import (
    CFG,
    CONTACT,
    NOW,
    ORG,
    ago,
    click,
    delete,
    delivery,
    dispatch,
    list_added,
    list_removed,
    opened,
    reply,
    run,
    subscribe,
    unsubscribe,
    upsert,
)


def test_next_expiry_is_when_the_oldest_message_leaves() -> None:
    state, _ = run([dispatch("a", ago(80)), dispatch("b", ago(10))])
    assert state is not None
    due = next_expiry(state, CFG)
    assert due == int((ago(80) + timedelta(days=90)).timestamp()) + 1
    just_before = ago(80) + timedelta(days=90)
    assert expire(state, just_before, CFG) == 0 and "a" in state.messages
    expire(state, just_before + timedelta(seconds=1), CFG)
    assert set(state.messages) == {"b"}
    assert next_expiry(state, CFG) == int((ago(10) + timedelta(days=90)).timestamp()) + 1
    assert state.buckets == rebuild(state, CFG)


def test_next_expiry_covers_pending_and_tombstone() -> None:
    state, _ = run([opened("x", ago(1))])
    assert state is not None
    assert next_expiry(state, CFG) == int(NOW.timestamp()) + CFG.pending_max_seconds + 1
    state, _ = run([delete(ago(3))])
    assert state is not None
    assert next_expiry(state, CFG) == int((ago(3) + timedelta(days=90)).timestamp()) + 1
    expire(state, ago(3) + timedelta(days=91), CFG)
    assert state.is_empty()
    assert next_expiry(state, CFG) is None


def test_expire_keeps_the_last_subscription_entry_before_the_window() -> None:
    state, _ = run([unsubscribe(ago(60), "sms"), subscribe(ago(50), "sms"), unsubscribe(ago(40))])
    assert state is not None
    expire(state, NOW + timedelta(days=55), CFG)
    assert state.subscriptions["sms"] == [(to_us(ago(50)), 0)]
    snap = build_snapshot(ORG, CONTACT, state, NOW + timedelta(days=55), CFG)
    assert snap is not None and snap["channels"]["sms"]["status"] == "subscribed"
    assert snap["channels"]["email"]["status"] == "unsubscribed"


def test_a_late_dispatch_after_expiry_still_sees_the_unsubscribe_before_the_window() -> None:
    state, _ = run(
        [subscribe(ago(70), "sms"), unsubscribe(ago(60), "sms"), subscribe(ago(20), "sms")]
    )
    later = NOW + timedelta(days=35)  # the window now starts 55 days before NOW
    assert state is not None
    expire(state, later, CFG)
    assert len(state.subscriptions["sms"]) == 2
    outcome = apply_event(state, dispatch("m", ago(50), "sms"), later, CFG)
    assert len(outcome.effects) == 1
    snap = build_snapshot(ORG, CONTACT, outcome.state, later, CFG)
    assert snap is not None and snap["channels"]["sms"]["sending_errors"] == 1


def test_expiry_keeps_lists_and_forgets_old_removals_and_event_ids() -> None:
    state, _ = run([list_added(ago(60), "L1", "VIP"), list_removed(ago(60), "L2")])
    assert state is not None and len(state.seen) == 2
    later = NOW + timedelta(days=40)
    expire(state, later, CFG)
    assert set(state.lists) == {"L1"}
    assert state.seen == {}
    snap = build_snapshot(ORG, CONTACT, state, later, CFG)
    assert snap is not None and snap["lists"] == [{"list_id": "L1", "name": "VIP"}]


def _rich_state() -> object:
    state, _ = run(
        [
            upsert(ago(5), name="Ana", phone="+5511999990000", origin={"type": "api"}),
            list_added(ago(5), "L1", "VIP"),
            list_removed(ago(4), "L2"),
            unsubscribe(ago(6), "sms"),
            dispatch("3f1c2a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60", ago(3), "sms"),
            dispatch("64b7f0c2a1e3d4f5a6b7c8d9", ago(3), "email", kind="automated"),
            opened("64b7f0c2a1e3d4f5a6b7c8d9", ago(2)),
            click("64b7f0c2a1e3d4f5a6b7c8d9", ago(2)),
            dispatch("msg/ção-ü", ago(2), "whatsapp"),
            reply("msg/ção-ü", ago(1), "whatsapp"),
            delivery("waiting", ago(1), "whatsapp"),
            dispatch("x" * 128, ago(1)),
            delete(ago(7)),
        ]
    )
    return state


def test_codec_round_trips_exactly() -> None:
    state = _rich_state()
    blob = encode(state)  # type: ignore[arg-type]
    again = decode(blob, CFG)
    assert again == state
    assert list(again.seen.items()) == list(state.seen.items())  # ring order too  # type: ignore[attr-defined]
    assert encode(again) == blob
    assert build_snapshot(ORG, CONTACT, again, NOW, CFG) == build_snapshot(
        ORG,
        CONTACT,
        state,
        NOW,
        CFG,  # type: ignore[arg-type]
    )


def test_codec_rejects_unknown_versions() -> None:
    with pytest.raises(ValueError, match="version"):
        decode(b"\x09rest")


def test_encoded_size_of_300_messages_stays_small() -> None:
    events = [upsert(ago(80), name="Ana Souza", email="ana@example.com")]
    for i in range(300):
        mid = str(uuid.UUID(int=i + 1))
        at = ago(days=i * 0.29)
        ch = ("sms", "email", "whatsapp")[i % 3]
        events += [dispatch(mid, at, ch), delivery(mid, at, ch)]
        if i % 2:
            events += [opened(mid, at, ch), click(mid, at, ch)]
    state, _ = run(events)
    assert state is not None and len(state.messages) == 300
    size = len(encode(state))
    # ~35 bytes a message (u16 flags, a UUID in 17 bytes, the delivery time the bot-click rule
    # needs as an i32 offset, the first open and click) plus the 256-entry dedupe ring.
    assert size < 13.5 * 1024, size
