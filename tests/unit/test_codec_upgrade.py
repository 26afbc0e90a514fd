"""A worker upgraded over a table written by the previous release keeps every count.

The previous release wrote contact states with codec version 1 (`tests/unit/codec_v1.py`, a
frozen copy) inside stored-contact format 1 (version + published tiers). The current release
writes codec version 2 inside stored format 2 (which adds the next expiry to the header), and
must read both. For any scenario of events: a value written by the old release reads back as
the same state, published tiers and version; the snapshot and the next expiry are those of
the state; and once written again in the new format, the value reads back the same.
"""

from __future__ import annotations

import struct
from dataclasses import replace

import orjson
from hypothesis import given

from agents.stored import FORMAT, StoredContact, pack, peek, unpack
from counting import ContactState, build_snapshot, decode, encode, next_expiry, tiers
from counting.codec import VERSION
from tests.unit import codec_v1, codec_v2
from tests.unit import factories as f
from tests.unit.test_properties import SETTINGS, replay, scenarios


def _as_the_previous_release_had_it(state: ContactState) -> ContactState:
    """The state without what the previous release did not keep: the channels it was sent on
    are read back from its messages (a dispatch that lost to an earlier one of the same
    message, on another channel, left no trace then)."""
    sent: dict[str, int] = {}
    for record in state.messages.values():
        assert record.dispatched_at is not None
        sent[record.channel] = max(sent.get(record.channel, -1), record.dispatched_at)
    return replace(state, sent_channels=sent)


def _old_release_value(stored: StoredContact) -> bytes:
    """Exactly what `agents.stored.pack` wrote before format 2."""
    published = orjson.dumps([[s, t, r] for s, (t, r) in stored.published.items()])
    head = struct.pack(">BQI", 1, stored.version, len(published))
    return head + published + codec_v1.encode(stored.state)


@SETTINGS
@given(scenarios())
def test_a_state_written_by_the_previous_codec_reads_back_the_same(events: list) -> None:  # type: ignore[type-arg]
    state = _as_the_previous_release_had_it(
        replay(events, f.CFG, through_codec=False) or ContactState()
    )
    old = codec_v1.encode(state)
    assert old[0] == 1
    again = decode(old, f.CFG)
    assert again == state
    assert list(again.seen.items()) == list(state.seen.items())
    new = encode(again)
    assert new[0] == VERSION == 3
    assert decode(new, f.CFG) == state


@SETTINGS
@given(scenarios())
def test_a_table_value_of_the_previous_release_keeps_every_count_after_the_upgrade(
    events: list,  # type: ignore[type-arg]
) -> None:
    state = _as_the_previous_release_had_it(
        replay(events, f.CFG, through_codec=False) or ContactState()
    )
    snapshot = build_snapshot(f.ORG, f.CONTACT, state, f.NOW, f.CFG)
    published = dict(tiers(snapshot)) if snapshot is not None else {}
    stored = StoredContact(state, published, 1_780_000_000_123)

    old_value = _old_release_value(stored)
    read = unpack(old_value, f.CFG)
    assert (read.state, read.published, read.version) == (state, published, stored.version)
    assert build_snapshot(f.ORG, f.CONTACT, read.state, f.NOW, f.CFG) == snapshot
    due = next_expiry(state, f.CFG)
    assert peek(old_value, f.CFG) == (stored.version, due)  # decoded: format 1 has no header

    new_value = pack(read, due)
    assert new_value[0] == FORMAT == 2
    assert peek(new_value, f.CFG) == (stored.version, due)  # from the header alone
    again = unpack(new_value, f.CFG)
    assert (again.state, again.published, again.version) == (state, published, stored.version)


@SETTINGS
@given(scenarios())
def test_a_version_2_value_gets_the_channels_sent_on_from_its_messages(
    events: list,  # type: ignore[type-arg]
) -> None:
    state = replay(events, f.CFG, through_codec=False) or ContactState()
    value = codec_v2.encode(state)  # the release before: no channels sent on
    assert value[0] == 2
    read = decode(value, f.CFG)
    assert read == _as_the_previous_release_had_it(state)
    # every figure is kept, and the channels it was sent on now stay shown after expiry
    assert build_snapshot(f.ORG, f.CONTACT, read, f.NOW, f.CFG) == build_snapshot(
        f.ORG, f.CONTACT, _as_the_previous_release_had_it(state), f.NOW, f.CFG
    )
    assert decode(encode(read), f.CFG) == read


@SETTINGS
@given(scenarios())
def test_the_channels_sent_on_survive_the_codec_exactly(events: list) -> None:  # type: ignore[type-arg]
    state = replay(events, f.CFG, through_codec=False) or ContactState()
    value = encode(state)
    assert value[0] == VERSION
    read = decode(value, f.CFG)
    assert read == state and read.sent_channels == state.sent_channels
    # ... in the binary header, not in the JSON extras (empty for most contacts)
    names = sorted(
        {r.channel for r in state.messages.values()}
        | {r.channel for r in state.pending.values()}
        | set(state.sent_channels)
    )
    extras_at = 2 + sum(1 + len(n.encode()) for n in names) + 32 + 1 + 9 * len(state.sent_channels)
    (extras_length,) = struct.unpack_from("<I", value, extras_at)
    assert (extras_length == 0) == (not (state.registration or state.lists or state.subscriptions))
