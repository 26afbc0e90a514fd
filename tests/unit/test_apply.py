"""The counting rules of SPEC §3, one behaviour per test."""

from __future__ import annotations

from datetime import timedelta

from counting import CountingConfig, apply_event, build_snapshot
from counting.timeutil import to_us
from tests.unit.factories import (
    CFG,
    CONTACT,
    NOW,
    ORG,
    ago,
    channel,
    click,
    delete,
    delivery,
    dispatch,
    list_added,
    list_removed,
    opened,
    rate_tier,
    reply,
    run,
    snapshot_of,
    subscribe,
    unsubscribe,
    upsert,
)


def figures(snap: dict[str, object] | None, name: str) -> tuple[int, ...]:
    ch = channel(snap, name)
    keys = ("dispatched", "sending_errors", "delivered", "opened", "clicked", "replied")
    return tuple(ch[k] for k in keys)


def test_message_89_days_old_counts_and_91_days_old_does_not() -> None:
    snap = snapshot_of(
        [
            dispatch("m89", ago(days=89)),
            delivery("m89", ago(days=89)),
            dispatch("m91", ago(days=91)),
        ]
    )
    assert figures(snap, "email") == (1, 0, 1, 0, 0, 0)


def test_window_boundary_is_inclusive_at_exactly_90_days() -> None:
    state, outcomes = run(
        [dispatch("edge", ago(days=90)), dispatch("old", ago(days=90, seconds=1))]
    )
    assert [o.code for o in outcomes] == ["applied", "too_old"]
    snap = build_snapshot(ORG, CONTACT, state, NOW, CFG)
    assert channel(snap, "email")["dispatched"] == 1
    # one second later the first one has left too; the contact stays, with zeros (SPEC §3)
    later = build_snapshot(ORG, CONTACT, state, NOW + timedelta(seconds=1), CFG)
    assert later is not None and figures(later, "email") == (0, 0, 0, 0, 0, 0)
    assert rate_tier(later["engagement"]) == {"rate": None, "tier": None}
    assert channel(later, "email")["status"] == "subscribed"


def test_sms_has_no_open_rate_even_with_opens() -> None:
    snap = snapshot_of([dispatch("m", ago(1), "sms"), opened("m", ago(1), "sms")])
    sms = channel(snap, "sms")
    assert sms["opened"] == 1
    assert sms["rates"] == {
        "delivery": 100.0,
        "open": None,
        "click": 0.0,
        "response": 0.0,
        "bounce": 0.0,
        "complaint": 0.0,
    }


def test_email_has_no_response_rate() -> None:
    snap = snapshot_of([dispatch("m", ago(1)), reply("m", ago(1))])
    assert channel(snap, "email")["rates"]["response"] is None


def test_click_implies_open_on_email_and_whatsapp_but_not_sms() -> None:
    for name, opens in (("email", 1), ("whatsapp", 1), ("sms", 0)):
        # an hour after the dispatch: a person's click, not a link scanner's (SPEC §7.1)
        snap = snapshot_of([dispatch("m", ago(1), name), click("m", ago(1, hours=-1), name)])
        ch = channel(snap, name)
        assert (ch["delivered"], ch["opened"], ch["clicked"]) == (1, opens, 1), name


def test_reply_implies_delivery_and_engagement() -> None:
    snap = snapshot_of([dispatch("m", ago(1), "whatsapp"), reply("m", ago(1), "whatsapp")])
    assert figures(snap, "whatsapp") == (1, 0, 1, 1, 0, 1)
    assert rate_tier(channel(snap, "whatsapp")["engagement"]) == {
        "rate": 100.0,
        "tier": "very_high",
    }


def test_the_same_open_twice_counts_once() -> None:
    state, outcomes = run([dispatch("m", ago(2)), opened("m", ago(1)), opened("m", ago(1, 1))])
    assert [o.code for o in outcomes] == ["applied", "applied", "applied"]  # earlier first open
    snap = build_snapshot(ORG, CONTACT, state, NOW, CFG)
    assert figures(snap, "email") == (1, 0, 1, 1, 0, 0)
    _, again = run([opened("m", ago(0, 1))], state=state)
    assert again[0].code == "unchanged"


def test_duplicate_event_id_is_skipped() -> None:
    event = opened("m", ago(1))
    state, outcomes = run([dispatch("m", ago(2)), event, event])
    assert [o.code for o in outcomes] == ["applied", "applied", "duplicate"]
    assert figures(build_snapshot(ORG, CONTACT, state, NOW, CFG), "email") == (1, 0, 1, 1, 0, 0)


def test_duplicate_after_the_ring_forgot_it_is_still_harmless() -> None:
    cfg = CountingConfig(dedupe_max_per_contact=1)
    first = click("m", ago(1))
    state, outcomes = run([dispatch("m", ago(2)), first, opened("m", ago(1)), first], cfg=cfg)
    assert outcomes[-1].code == "unchanged"
    snap = build_snapshot(ORG, CONTACT, state, NOW, cfg)
    assert figures(snap, "email") == (1, 0, 1, 1, 1, 0)


def test_open_before_dispatch_waits_then_merges() -> None:
    state, outcomes = run([opened("m", ago(1)), click("m", ago(1))])
    assert [o.code for o in outcomes] == ["pending", "pending"]
    assert state is not None and "m" in state.pending
    assert build_snapshot(ORG, CONTACT, state, NOW, CFG) is None  # nothing to show yet
    state, outcomes = run([dispatch("m", ago(2))], state=state)
    assert outcomes[0].code == "applied"
    assert state is not None and not state.pending
    assert figures(build_snapshot(ORG, CONTACT, state, NOW, CFG), "email") == (1, 0, 1, 1, 1, 0)


def test_pending_that_times_out_is_dropped_and_counted() -> None:
    state, _ = run([opened("m", ago(1))])
    later = NOW + timedelta(seconds=CFG.pending_max_seconds + 1)
    outcome = apply_event(state, dispatch("m", ago(2)), later, CFG)
    assert outcome.pending_dropped == 1
    assert outcome.state is not None and outcome.state.dropped_pending == 1
    snap = build_snapshot(ORG, CONTACT, outcome.state, later, CFG)
    assert figures(snap, "email") == (1, 0, 0, 0, 0, 0)  # the open gave up waiting


def test_pending_is_bounded_per_contact_dropping_the_oldest() -> None:
    cfg = CountingConfig(pending_max_per_contact=2)
    state, outcomes = run([opened(f"m{i}", ago(1)) for i in range(3)], cfg=cfg)
    assert state is not None and list(state.pending) == ["m1", "m2"]
    assert outcomes[-1].pending_dropped == 1 and state.dropped_pending == 1


def test_dispatch_to_unsubscribed_channel_is_a_sending_error() -> None:
    state, outcomes = run(
        [
            unsubscribe(ago(5), "sms"),
            dispatch("m", ago(4), "sms"),
            delivery("m", ago(4), "sms"),
            click("m", ago(3), "sms"),
        ]
    )
    effects = [e for o in outcomes for e in o.effects]
    assert [(e.channel, e.message_id, e.status) for e in effects] == [("sms", "m", "sending_error")]
    snap = build_snapshot(ORG, CONTACT, state, NOW, CFG)
    assert figures(snap, "sms") == (1, 1, 0, 0, 0, 0)
    sms = channel(snap, "sms")
    assert sms["status"] == "unsubscribed"
    assert sms["rates"]["delivery"] == 0.0 and sms["engagement"]["tier"] is None
    assert snap is not None and snap["dispatched"] == {"total": 1, "by_channel": {"sms": 1}}


def test_unsubscribe_at_the_dispatch_instant_wins() -> None:
    snap = snapshot_of([dispatch("m", ago(4), "sms"), unsubscribe(ago(4), "sms")])
    assert channel(snap, "sms")["sending_errors"] == 1


def test_late_older_unsubscribe_re_evaluates_and_emits_once() -> None:
    state, outcomes = run(
        [
            dispatch("before", ago(6), "sms"),
            dispatch("after", ago(4), "sms"),
            delivery("after", ago(4), "sms"),
            unsubscribe(ago(5), "sms"),  # arrives last, dated between the two dispatches
        ]
    )
    assert [e.message_id for e in outcomes[-1].effects] == ["after"]
    snap = build_snapshot(ORG, CONTACT, state, NOW, CFG)
    assert figures(snap, "sms") == (2, 1, 0, 0, 0, 0)
    # a replayed unsubscribe (new event id) changes nothing and emits nothing
    _, again = run([unsubscribe(ago(5), "sms")], state=state)
    assert again[0].code == "unchanged" and again[0].effects == []


def test_subscribe_after_unsubscribe() -> None:
    snap = snapshot_of(
        [
            unsubscribe(ago(10), "whatsapp"),
            dispatch("blocked", ago(9), "whatsapp"),
            subscribe(ago(8), "whatsapp"),
            dispatch("ok", ago(7), "whatsapp"),
            delivery("ok", ago(7), "whatsapp"),
        ]
    )
    wa = channel(snap, "whatsapp")
    assert wa["status"] == "subscribed"
    assert figures(snap, "whatsapp") == (2, 1, 1, 0, 0, 0)


def test_late_subscribe_clears_an_error_without_retracting_the_status() -> None:
    state, outcomes = run(
        [
            unsubscribe(ago(10), "sms"),
            dispatch("m", ago(8), "sms"),
            subscribe(ago(9), "sms"),
        ]
    )
    assert len(outcomes[1].effects) == 1
    assert figures(build_snapshot(ORG, CONTACT, state, NOW, CFG), "sms") == (1, 0, 0, 0, 0, 0)


def test_channel_status_and_absence() -> None:
    snap = snapshot_of([subscribe(ago(3), "sms"), dispatch("m", ago(1), "email")])
    assert snap is not None
    assert list(snap["channels"]) == ["sms", "email"]  # configured order; whatsapp absent
    assert channel(snap, "sms")["status"] == "subscribed"
    assert channel(snap, "sms")["dispatched"] == 0
    assert channel(snap, "email")["status"] == "subscribed"


def test_unsubscribed_without_dispatches_still_shows_the_channel() -> None:
    snap = snapshot_of([unsubscribe(ago(3), "email")])
    assert channel(snap, "email")["status"] == "unsubscribed"


def test_null_tier_without_deliveries() -> None:
    snap = snapshot_of([dispatch("m", ago(1)), dispatch("n", ago(2), "sms")])
    assert snap is not None
    assert rate_tier(snap["engagement"]) == {"rate": None, "tier": None}
    assert rate_tier(channel(snap, "email")["engagement"]) == {"rate": None, "tier": None}
    assert channel(snap, "email")["rates"] == {
        "delivery": 0.0,
        "open": None,
        "click": None,
        "response": None,
        "bounce": 0.0,
        "complaint": None,
    }


def test_engagement_tiers_from_events() -> None:
    def overall(engaged: int, delivered: int) -> dict[str, object]:
        events = []
        for i in range(delivered):
            events += [dispatch(f"m{i}", ago(1)), delivery(f"m{i}", ago(1))]
            if i < engaged:
                events.append(opened(f"m{i}", ago(1)))
        snap = snapshot_of(events)
        assert snap is not None
        result: dict[str, object] = snap["engagement"]
        return result

    # SPEC §7.3: the counts the rate is made of, and the latest counted interaction
    at = "2026-05-31T12:00:00Z"  # ago(1)
    assert overall(1, 5) == {
        "rate": 20.0,
        "tier": "low",
        "engaged": 1,
        "delivered": 5,
        "last_engaged_at": at,
    }
    assert rate_tier(overall(1, 6)) == {"rate": 16.67, "tier": "no_engagement"}
    assert rate_tier(overall(2, 3)) == {"rate": 66.67, "tier": "high"}
    assert rate_tier(overall(1, 2)) == {"rate": 50.0, "tier": "high"}
    assert overall(3, 4) == {
        "rate": 75.0,
        "tier": "very_high",
        "engaged": 3,
        "delivered": 4,
        "last_engaged_at": at,
    }
    assert overall(0, 8) == {
        "rate": 0.0,
        "tier": "no_engagement",
        "engaged": 0,
        "delivered": 8,
        "last_engaged_at": None,
    }


def test_overall_engagement_spans_channels() -> None:
    snap = snapshot_of(
        [
            dispatch("a", ago(1), "email"),
            opened("a", ago(1), "email"),
            dispatch("b", ago(1), "sms"),
            delivery("b", ago(1), "sms"),
        ]
    )
    assert snap is not None and rate_tier(snap["engagement"]) == {"rate": 50.0, "tier": "high"}


def test_earliest_dispatch_wins() -> None:
    state, outcomes = run(
        [dispatch("m", ago(2), kind="automated"), dispatch("m", ago(3)), dispatch("m", ago(1))]
    )
    # the third changes no figure, but it is the channel's latest dispatch (kept for deletes)
    assert [o.code for o in outcomes] == ["applied", "applied", "applied"]
    assert state is not None
    assert state.sent_channels == {"email": to_us(ago(1))}
    assert state.messages["m"].dispatched_at == state.oldest_dispatch
    assert figures(build_snapshot(ORG, CONTACT, state, NOW, CFG), "email")[0] == 1


def test_delete_drops_older_events() -> None:
    state, outcomes = run(
        [
            upsert(ago(10), name="Ana"),
            dispatch("m", ago(9)),
            delete(ago(5)),
            opened("m", ago(6)),
            dispatch("late", ago(7)),
        ]
    )
    assert [o.code for o in outcomes][-2:] == ["dropped_deleted", "dropped_deleted"]
    assert build_snapshot(ORG, CONTACT, state, NOW, CFG) is None  # only a tombstone is left
    assert state is not None and state.tombstone is not None


def test_delete_arriving_after_older_events_removes_them() -> None:
    snap = snapshot_of(
        [
            upsert(ago(10), name="Ana", email="ana@example.com"),
            list_added(ago(10), "L1", "VIP"),
            dispatch("m", ago(9)),
            unsubscribe(ago(8), "sms"),
            delete(ago(5)),
        ]
    )
    assert snap is None


def test_events_after_delete_start_a_new_contact() -> None:
    snap = snapshot_of(
        [
            upsert(ago(10), name="Old Name", phone="+5511999990000"),
            dispatch("old", ago(9)),
            delete(ago(5)),
            upsert(ago(4), name="New Name"),
            dispatch("new", ago(3)),
            delivery("new", ago(3)),
        ]
    )
    assert snap is not None
    assert snap["registration"]["name"] == "New Name"
    assert snap["registration"]["phone"] is None
    assert snap["registration"]["contact_since"] == "2026-05-28T12:00:00Z"
    assert figures(snap, "email") == (1, 0, 1, 0, 0, 0)


def test_registration_last_writer_wins_by_event_time() -> None:
    snap = snapshot_of(
        [
            upsert(ago(1), name="Newest"),
            upsert(ago(3), name="Oldest", email="a@b.co"),
            upsert(ago(2), phone="+14155550100"),
            upsert(ago(0, 5), email=None),  # explicit null clears
        ]
    )
    assert snap is not None
    reg = snap["registration"]
    assert (reg["name"], reg["phone"], reg["email"]) == ("Newest", "+14155550100", None)


def test_contact_since_is_created_at_or_the_first_event() -> None:
    snap = snapshot_of([dispatch("m", ago(9)), upsert(ago(1), name="A")])
    assert snap is not None and snap["registration"]["contact_since"] == "2026-05-23T12:00:00Z"
    created = "2020-01-02T03:04:05+00:00"
    snap = snapshot_of([dispatch("m", ago(9)), upsert(ago(1), created_at=created)])
    assert snap is not None and snap["registration"]["contact_since"] == "2020-01-02T03:04:05Z"


def test_origin_is_rendered_with_its_label() -> None:
    origin = {"type": "chatbot", "channel": "webchat", "flow": "Triage"}
    snap = snapshot_of([upsert(ago(1), origin=origin)])
    assert snap is not None
    assert snap["registration"]["origin"] == origin | {"account": None, "label": "Webchat - Triage"}


def test_lists_last_writer_wins_and_removal_is_remembered() -> None:
    snap = snapshot_of(
        [
            list_removed(ago(1), "L1"),
            list_added(ago(2), "L1", "Old"),  # older add arrives late: stays removed
            list_added(ago(3), "L2", "VIP"),
            list_added(ago(4), "L3"),
        ]
    )
    assert snap is not None
    assert snap["lists"] == [{"list_id": "L2", "name": "VIP"}, {"list_id": "L3", "name": "L3"}]


def test_too_old_events_are_ignored() -> None:
    state, outcomes = run([upsert(ago(91), name="x"), dispatch("m", ago(100))])
    assert [o.code for o in outcomes] == ["too_old", "too_old"]
    assert state is None


def test_registration_tie_at_the_same_instant_does_not_depend_on_arrival() -> None:
    first = upsert(ago(1), eid="edit-a", name="A")
    second = upsert(ago(1), eid="edit-b", name="B")
    forward = snapshot_of([first, second])
    backward = snapshot_of([second, first])
    assert forward is not None and backward is not None
    assert forward["registration"]["name"] == backward["registration"]["name"]


def test_list_tie_at_the_same_instant_does_not_depend_on_arrival() -> None:
    add = list_added(ago(1), "L1", "VIP", eid="list-a")
    remove = list_removed(ago(1), "L1", eid="list-b")
    assert snapshot_of([add, remove, upsert(ago(2), name="x")]) == snapshot_of(
        [remove, add, upsert(ago(2), name="x")]
    )


def test_delete_forgets_interactions_waiting_from_before_it() -> None:
    # Clock skew: the open is dated before the delete, its dispatch after it.
    events = [opened("m", ago(5, 1)), delete(ago(5)), dispatch("m", ago(4, 23))]
    for order in (events, [events[1], events[0], events[2]]):
        snap = snapshot_of(order)
        assert snap is not None
        assert channel(snap, "email")["delivered"] == 0, order


def test_delete_boundary_is_exact_to_the_microsecond() -> None:
    t = ago(5)
    state, outcomes = run(
        [
            delete(t),
            dispatch("at", t),
            dispatch("just-before", t - timedelta(microseconds=1)),
        ]
    )
    assert [o.code for o in outcomes] == ["applied", "applied", "dropped_deleted"]
    assert state is not None and set(state.messages) == {"at"}


def test_sending_error_status_is_emitted_once_even_if_it_flips_back() -> None:
    _, outcomes = run(
        [
            unsubscribe(ago(10), "sms"),
            dispatch("m", ago(5), "sms"),  # error: emitted
            subscribe(ago(7), "sms"),  # late subscribe clears it
            unsubscribe(ago(6), "sms"),  # error again: not emitted again
        ]
    )
    assert [len(o.effects) for o in outcomes] == [0, 1, 0, 0]


def test_why_this_tier_counts_and_the_latest_counted_interaction() -> None:
    """SPEC §7.3, "5 of 8 delivered messages engaged": per channel and overall."""
    events = [
        dispatch("e1", ago(10)),
        opened("e1", ago(9)),
        opened("e1", ago(1)),  # a second open of e1 is not counted: e1 counts by its first
        dispatch("e2", ago(5)),
        click("e2", ago(4, hours=12)),
        dispatch("e3", ago(3)),
        delivery("e3", ago(3)),
        dispatch("s1", ago(2), "sms"),
        reply("s1", ago(2, hours=-1), "sms"),
        unsubscribe(ago(1, hours=6), "whatsapp"),
        dispatch("w1", ago(1), "whatsapp"),  # a sending error: never counted
        opened("w1", ago(0, hours=1), "whatsapp"),
    ]
    snap = snapshot_of(events)
    email, sms, whatsapp = (channel(snap, ch)["engagement"] for ch in ("email", "sms", "whatsapp"))
    assert (email["engaged"], email["delivered"]) == (2, 3)
    assert email["last_engaged_at"] == "2026-05-28T00:00:00Z"  # e2's click, 4.5 days ago
    assert (sms["engaged"], sms["delivered"], sms["last_engaged_at"]) == (
        1,
        1,
        "2026-05-30T13:00:00Z",
    )
    assert (whatsapp["engaged"], whatsapp["delivered"], whatsapp["last_engaged_at"]) == (0, 0, None)
    assert snap is not None
    overall = snap["engagement"]
    assert (overall["engaged"], overall["delivered"]) == (3, 4)
    assert overall["last_engaged_at"] == "2026-05-30T13:00:00Z"
    assert overall["rate"] == 75.0  # 3 of 4: the rate is made of the counts shown
    # ... and once those messages leave the window, none is left to show
    later = build_snapshot(ORG, CONTACT, run(events)[0], NOW + timedelta(days=95), CFG)
    assert later is not None
    assert later["engagement"]["last_engaged_at"] is None
    assert later["engagement"]["delivered"] == 0
