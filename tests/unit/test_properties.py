"""Exactness (SPEC §3) as properties, checked against the naive reference implementation."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from counting import (
    ContactState,
    CountingConfig,
    apply_event,
    build_snapshot,
    current_tiers,
    decode,
    encode,
    expire,
    tiers,
)
from counting.buckets import rebuild
from models.events import ContactDelete, Event
from tests.unit import factories as f
from tests.unit.reference import reference_snapshot

DAY = 86_400
SETTINGS = settings(
    max_examples=int(os.environ.get("EM_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CONFIGS = [
    f.CFG,
    # A one-entry dedupe ring: exactness must not rely on it.
    CountingConfig(dedupe_max_per_contact=1, org_timezones={f.ORG: "America/Sao_Paulo"}),
    # An org that counts machine opens and bot clicks, and a longer bot-click delay (§7.1).
    CountingConfig(bot_click_seconds=90, org_exclude_machine_events={f.ORG: False}),
    CountingConfig(bot_click_seconds=0, exclude_machine_events=False),
]
CHANNELS = ("sms", "email", "whatsapp")

# Offsets in seconds before NOW; a few fixed values make equal timestamps (ties) likely.
offsets = st.one_of(
    st.integers(0, 95 * DAY),
    st.sampled_from([0, 3600, 5 * DAY, 5 * DAY + 1, 89 * DAY, 90 * DAY, 90 * DAY + 1]),
)


def at(offset: int) -> Any:
    return f.NOW - timedelta(seconds=offset)


# What may follow a dispatch; the SPEC §7 signals only when a scenario asks for them.
FOLLOWERS = [f.delivery, f.opened, f.opened, f.click, f.reply]
SIGNALS = [f.machine_open, f.bot_click, f.bounce, f.soft_bounce, f.complaint, f.click]


@st.composite
def scenarios(draw: st.DrawFn, signals: bool = True) -> list[Event]:
    with_delete = draw(st.booleans())
    events: list[Event] = []
    for i in range(draw(st.integers(0, 7))):
        mid = f"m{i}"
        sent = draw(offsets)
        ch = draw(st.sampled_from(CHANNELS))
        if draw(st.integers(0, 5)):  # sometimes the dispatch never arrives
            events.append(
                f.dispatch(mid, at(sent), ch, draw(st.sampled_from(["single", "automated"])))
            )
        if not with_delete and draw(st.integers(0, 4)) == 0:  # a retried dispatch
            events.append(f.dispatch(mid, at(draw(offsets)), draw(st.sampled_from(CHANNELS))))
        makers = FOLLOWERS + SIGNALS if signals else FOLLOWERS
        for make in draw(st.lists(st.sampled_from(makers), max_size=4)):
            low = -2 * 3600 if not with_delete else 0  # producer clock skew
            # Often within seconds of the dispatch: clicks near the bot-click delay (§7.1).
            lag = draw(
                st.one_of(
                    st.integers(low, 3 * DAY),
                    st.integers(0, 120),
                    st.sampled_from([0, 1, 2, 3, 89, 90, 91]),  # on the delays of CONFIGS
                )
            )
            other = draw(st.integers(0, 9)) == 0  # an interaction naming another channel
            events.append(
                make(mid, at(max(0, sent - lag)), draw(st.sampled_from(CHANNELS)) if other else ch)
            )
    for _ in range(draw(st.integers(0, 3))):
        make_sub = draw(st.sampled_from([f.unsubscribe, f.subscribe]))
        events.append(make_sub(at(draw(offsets)), draw(st.sampled_from(CHANNELS))))
    for _ in range(draw(st.integers(0, 2))):
        fields = draw(
            st.dictionaries(
                st.sampled_from(["name", "phone", "email", "created_at", "origin"]),
                st.none(),
                max_size=3,
            )
        )
        values = {
            "name": draw(st.sampled_from(["Ana", "Bia", None])),
            "phone": draw(st.sampled_from(["+5511999990000", None])),
            "email": draw(st.sampled_from(["a@b.co", None])),
            "created_at": draw(st.sampled_from(["2024-01-02T03:04:05+00:00", None])),
            "origin": draw(st.sampled_from([{"type": "api"}, {"type": "csv", "file": "l.csv"}])),
        }
        events.append(f.upsert(at(draw(offsets)), **{k: values[k] for k in fields}))
    for _ in range(draw(st.integers(0, 3))):
        list_id = draw(st.sampled_from(["L1", "L2"]))
        if draw(st.booleans()):
            events.append(
                f.list_added(at(draw(offsets)), list_id, draw(st.sampled_from(["VIP", None])))
            )
        else:
            events.append(f.list_removed(at(draw(offsets)), list_id))
    if with_delete:
        events.append(f.delete(at(draw(st.integers(0, 20 * DAY)))))
    return events


def replay(events: list[Event], cfg: CountingConfig, *, through_codec: bool) -> ContactState | None:
    state: ContactState | None = None
    for event in events:
        state = apply_event(state, event, f.NOW, cfg).state
        if state is not None:
            # Incremental buckets always equal a recomputation from the messages.
            assert state.buckets == rebuild(state, cfg)
            if through_codec:  # a worker restart between any two events
                again = decode(encode(state), cfg)
                assert again == state
                state = again
    return state


def comparable(snapshot: dict[str, Any] | None, events: list[Event]) -> dict[str, Any] | None:
    # contact_since after a delete is best effort (docs/counting.md); everything else is exact.
    if snapshot is not None and any(isinstance(e, ContactDelete) for e in events):
        snapshot = {**snapshot, "registration": {**snapshot["registration"], "contact_since": None}}
    return snapshot


@SETTINGS
@given(scenario=scenarios(), data=st.data())
def test_any_order_and_any_duplicates_give_the_reference_snapshot(
    scenario: list[Event], data: st.DataObject
) -> None:
    cfg = data.draw(st.sampled_from(CONFIGS))
    duplicates = data.draw(st.lists(st.sampled_from(scenario), max_size=8)) if scenario else []
    arrival = data.draw(st.permutations(scenario + duplicates))
    later = f.NOW + timedelta(seconds=data.draw(st.sampled_from([0, 1, 3600, 2 * DAY, 9 * DAY])))

    in_order = replay(scenario, cfg, through_codec=False)
    shuffled = replay(arrival, cfg, through_codec=True)
    expected = reference_snapshot(f.ORG, f.CONTACT, scenario, f.NOW, later, cfg)

    for state in (in_order, shuffled):
        got = build_snapshot(f.ORG, f.CONTACT, state, later, cfg)
        assert comparable(got, scenario) == comparable(expected, scenario)
    # Expiring first (what the sweep does) gives the same snapshot as the lazy window.
    if shuffled is not None:
        lazy = build_snapshot(f.ORG, f.CONTACT, shuffled, later, cfg)
        expire(shuffled, later, cfg)
        assert shuffled.buckets == rebuild(shuffled, cfg)
        assert build_snapshot(f.ORG, f.CONTACT, shuffled, later, cfg) == lazy
        assert decode(encode(shuffled), cfg) == shuffled


@SETTINGS
@given(scenario=scenarios(), data=st.data())
def test_replaying_everything_again_changes_nothing(
    scenario: list[Event], data: st.DataObject
) -> None:
    """A redelivered batch after a crash: the same events, again, in another order."""
    cfg = data.draw(st.sampled_from(CONFIGS))
    state = replay(scenario, cfg, through_codec=False)
    before = build_snapshot(f.ORG, f.CONTACT, state, f.NOW, cfg)
    again = data.draw(st.permutations(scenario))
    for event in again:
        state = apply_event(state, event, f.NOW, cfg).state
    after = build_snapshot(f.ORG, f.CONTACT, state, f.NOW, cfg)
    assert comparable(after, scenario) == comparable(before, scenario)


@SETTINGS
@given(scenario=scenarios(), data=st.data())
def test_current_tiers_are_the_tiers_of_the_snapshot(scenario: list[Event], data: Any) -> None:
    """A checkpoint takes a contact's tiers from `current_tiers` and leaves the snapshot to be
    built elsewhere (`agents.snapshot_process`): both must agree on every state, at any time
    (later times expire messages), for orgs that exclude machine events and orgs that do not,
    scope by scope and in the same order (the order is stored with the state)."""
    cfg = data.draw(st.sampled_from(CONFIGS))
    state = replay(scenario, cfg, through_codec=False)
    when = f.NOW + timedelta(seconds=data.draw(st.sampled_from([0, 1, 30 * DAY, 91 * DAY])))
    expected = tiers(build_snapshot(f.ORG, f.CONTACT, state, when, cfg))
    got = current_tiers(f.ORG, state, when, cfg)
    assert list(got.items()) == list(expected.items())
