"""SPEC §7.1 and §7.2, one rule at a time: machine opens, bot clicks, bounces, complaints.

The property tests compare every combination with the naive reference; these name the cases
a reader of the spec would ask about, so a failure says which rule broke.
"""

from __future__ import annotations

import itertools
from typing import Any

from counting import CountingConfig, build_snapshot
from tests.unit.factories import (
    CONTACT,
    NOW,
    ORG,
    ago,
    bot_click,
    bounce,
    channel,
    click,
    complaint,
    delivery,
    dispatch,
    machine_open,
    opened,
    reply,
    run,
    snapshot_of,
    soft_bounce,
)

COUNTS_MACHINE = CountingConfig(org_exclude_machine_events={ORG: False})
SENT = ago(1)  # every message here is dispatched a day ago


def _after(seconds: float) -> Any:
    return ago(1, seconds=-seconds)


def _figures(ch: dict[str, Any], *names: str) -> tuple[int, ...]:
    return tuple(ch[name] for name in names)


def test_a_machine_open_proves_delivery_but_is_no_engagement() -> None:
    snap = snapshot_of([dispatch("m", SENT), machine_open("m", _after(5))])
    email = channel(snap, "email")
    assert _figures(email, "delivered", "opened", "machine_opened") == (1, 0, 1)
    assert email["engagement"]["engaged"] == 0
    assert email["engagement"]["tier"] == "no_engagement"
    assert email["engagement"]["last_engaged_at"] is None
    assert snap is not None and snap["best_send_times"]["email"]["top_hours"] == []


def test_a_mailbox_that_prefetches_everything_is_not_very_high() -> None:
    events = []
    for i in range(10):
        events += [dispatch(f"m{i}", ago(i + 1)), machine_open(f"m{i}", ago(i + 1, seconds=-3))]
    events += [opened("m0", ago(1, hours=-2))]  # the person opened one
    snap = snapshot_of(events)
    assert snap is not None
    assert snap["engagement"]["rate"] == 10.0
    assert snap["engagement"]["tier"] == "no_engagement"
    assert channel(snap, "email")["machine_opened"] == 10


def test_an_org_that_counts_machine_events_sees_them_as_opens_and_clicks() -> None:
    events = [
        dispatch("m", SENT),
        machine_open("m", _after(5)),
        dispatch("n", SENT, "whatsapp"),
        bot_click("n", _after(60), "whatsapp"),
    ]
    snap = snapshot_of(events, cfg=COUNTS_MACHINE)
    email, whatsapp = channel(snap, "email"), channel(snap, "whatsapp")
    assert _figures(email, "opened", "machine_opened") == (1, 1)
    assert _figures(whatsapp, "opened", "clicked", "bot_clicked") == (1, 1, 1)
    assert snap is not None and snap["engagement"]["engaged"] == 2
    assert email["engagement"]["last_engaged_at"] == "2026-05-31T12:00:05Z"
    # ... and another org, under the same configuration, does not
    other = build_snapshot(
        "org-2", CONTACT, run(events, cfg=COUNTS_MACHINE)[0], NOW, COUNTS_MACHINE
    )
    assert other is not None and other["engagement"]["engaged"] == 0


def test_a_click_flagged_as_a_bot_proves_delivery_only() -> None:
    snap = snapshot_of([dispatch("m", SENT), bot_click("m", _after(3600))])
    email = channel(snap, "email")
    assert _figures(email, "delivered", "opened", "clicked", "bot_clicked") == (1, 0, 0, 1)


def test_a_click_within_two_seconds_of_the_delivery_is_a_bots() -> None:
    for after, clicked in ((1.999999, 0), (2, 1), (30, 1)):
        events = [dispatch("m", SENT), delivery("m", _after(10)), click("m", _after(10 + after))]
        email = channel(snapshot_of(events), "email")
        assert _figures(email, "clicked", "bot_clicked") == (clicked, 1 - clicked), after


def test_without_a_delivery_the_delay_counts_from_the_dispatch() -> None:
    email = channel(snapshot_of([dispatch("m", SENT), click("m", _after(1))]), "email")
    assert _figures(email, "delivered", "clicked", "bot_clicked") == (1, 0, 1)


def test_a_delivery_that_arrives_after_the_click_reclassifies_it() -> None:
    # 5 s after the dispatch is a person's click, until the delivery says it came 4 s after
    # the message reached the phone: every order gives the same figures.
    events = [dispatch("m", SENT), click("m", _after(5)), delivery("m", _after(4))]
    for order in itertools.permutations(events):
        email = channel(snapshot_of(list(order)), "email")
        assert _figures(email, "clicked", "bot_clicked") == (0, 1), order


def test_a_click_dated_before_its_delivery_is_a_persons() -> None:
    # Providers date deliveries late (a Twilio delivery is dated when its callback arrives):
    # a click before the delivery is no sign of a bot.
    events = [dispatch("m", SENT), delivery("m", _after(60)), click("m", _after(30))]
    email = channel(snapshot_of(events), "email")
    assert _figures(email, "clicked", "bot_clicked") == (1, 0)


def test_many_clicks_keep_the_first_and_the_last_exact() -> None:
    events = [dispatch("m", SENT), delivery("m", _after(0))]
    events += [click("m", _after(0.1 * i)) for i in range(20)]  # a scanner, in its 2 s
    events += [click("m", _after(3600 + i)) for i in range(40)]  # the person, an hour later
    email = channel(snapshot_of(events), "email")
    assert _figures(email, "clicked", "bot_clicked") == (1, 1)
    assert email["engagement"]["last_engaged_at"] == "2026-05-31T13:00:00Z"


def test_a_bot_click_then_a_persons_click_on_the_same_message() -> None:
    events = [
        dispatch("m", SENT),
        delivery("m", _after(1)),
        click("m", _after(1.5)),  # a link scanner, 0.5 s after delivery
        click("m", _after(3 * 3600)),  # the person, three hours later
    ]
    snap = snapshot_of(events)
    email = channel(snap, "email")
    assert _figures(email, "clicked", "bot_clicked", "opened") == (1, 1, 1)
    assert email["engagement"]["last_engaged_at"] == "2026-05-31T15:00:00Z"
    assert snap is not None
    (hour,) = snap["best_send_times"]["email"]["top_hours"]
    assert (hour["weekday"], hour["hour"]) == ("Sun", 15)


def test_the_delay_is_configurable_and_zero_turns_it_off() -> None:
    events = [dispatch("m", SENT), delivery("m", _after(0)), click("m", _after(10))]
    assert channel(snapshot_of(events), "email")["clicked"] == 1
    slow = CountingConfig(bot_click_seconds=30)
    assert channel(snapshot_of(events, cfg=slow), "email")["bot_clicked"] == 1
    off = CountingConfig(bot_click_seconds=0)
    instant = [dispatch("m", SENT), click("m", _after(0))]
    assert _figures(channel(snapshot_of(instant, cfg=off), "email"), "clicked", "bot_clicked") == (
        1,
        0,
    )


def test_a_hard_bounce_without_delivery_is_bounced_and_hard_bounced() -> None:
    events = [dispatch("m", SENT), bounce("m", _after(2)), dispatch("n", SENT), delivery("n", SENT)]
    email = channel(snapshot_of(events), "email")
    assert _figures(email, "dispatched", "delivered", "bounced", "hard_bounced") == (2, 1, 1, 1)
    assert email["rates"]["bounce"] == 50.0


def test_a_soft_bounce_followed_by_a_delivery_is_not_bounced() -> None:
    events = [dispatch("m", SENT), soft_bounce("m", _after(2)), delivery("m", _after(600))]
    for order in itertools.permutations(events):
        email = channel(snapshot_of(list(order)), "email")
        assert _figures(email, "delivered", "bounced", "hard_bounced") == (1, 0, 0), order
        assert email["rates"]["bounce"] == 0.0


def test_a_bounce_with_an_interaction_is_not_bounced() -> None:
    events = [
        dispatch("m", SENT, "sms"),
        bounce("m", _after(2), "sms"),
        reply("m", _after(9), "sms"),
    ]
    sms = channel(snapshot_of(events), "sms")
    assert _figures(sms, "delivered", "bounced", "hard_bounced", "replied") == (1, 0, 0, 1)


def test_a_complaint_counts_and_unsubscribes_the_channel_as_of_its_time() -> None:
    events = [
        dispatch("m", ago(3)),
        delivery("m", ago(3)),
        complaint("m", ago(2)),
        dispatch("later", ago(1)),  # after the complaint: a sending error
    ]
    state, outcomes = run(events)
    snap = build_snapshot(ORG, CONTACT, state, NOW, CountingConfig())
    email = channel(snap, "email")
    assert email["status"] == "unsubscribed"
    assert _figures(email, "dispatched", "delivered", "complained", "sending_errors") == (
        2,
        1,
        1,
        1,
    )
    assert email["rates"]["complaint"] == 100.0
    assert [e.message_id for o in outcomes for e in o.effects] == ["later"]


def test_a_complaint_dated_before_a_dispatch_that_arrives_after_it() -> None:
    # The complaint about m arrives first; n was dispatched after it but arrives last.
    events = [complaint("m", ago(2)), dispatch("n", ago(1)), dispatch("m", ago(3))]
    for order in itertools.permutations(events):
        state, outcomes = run(list(order))
        email = channel(build_snapshot(ORG, CONTACT, state, NOW, CountingConfig()), "email")
        assert _figures(email, "dispatched", "sending_errors", "complained") == (2, 1, 1), order
        assert [e.message_id for o in outcomes for e in o.effects] == ["n"], order


def test_a_complaint_implies_delivery() -> None:
    email = channel(snapshot_of([dispatch("m", SENT), complaint("m", _after(60))]), "email")
    assert _figures(email, "delivered", "complained") == (1, 1)
    assert email["engagement"]["engaged"] == 0


def test_every_signal_is_counted_once_per_message() -> None:
    events = [dispatch("m", SENT), delivery("m", _after(1))]
    for i in range(3):
        events += [
            machine_open("m", _after(2 + i)),
            bot_click("m", _after(2 + i)),
            bounce("m", _after(2 + i)),
            complaint("m", _after(60 + i)),
        ]
    email = channel(snapshot_of(events), "email")
    names = ("machine_opened", "bot_clicked", "bounced", "hard_bounced", "complained")
    assert _figures(email, *names) == (1, 1, 0, 0, 1)
