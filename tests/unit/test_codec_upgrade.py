"""A worker upgraded over a table written by an earlier release keeps every count.

Earlier releases wrote contact states with codec versions 1, 2 and 3 (`tests/unit/codec_v1.py`,
`codec_v2.py`, `codec_v3.py`: frozen copies) inside stored-contact format 1 (version +
published tiers) or 2 (which adds the next expiry to the header). The current release writes
codec version 4 inside stored format 2, and must read all of them. For any scenario of the
events those releases knew: a value written by the old release reads back as the same state,
published tiers and version; the snapshot and the next expiry are those of the state; and
once written again in the new format, the value reads back the same.

Codec 4 keeps what the old ones could not (the delivery time, the latest click, in µs): a
message read from an old value has its clicks at the second the old release kept, and no
delivery time. Those clicks are measured against the dispatch by the bot-click rule (SPEC
§7.1); with the rule off (``EM_BOT_CLICK_SECONDS=0``, ``CFG`` here) every count is exactly
the old release's, which is what these tests compare. With it on, an old click less than the
delay after its dispatch becomes a bot's, as it would if it arrived after the upgrade.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

import orjson
from hypothesis import given

from agents.stored import FORMAT, StoredContact, pack, peek, unpack
from counting import (
    ContactState,
    CountingConfig,
    build_snapshot,
    decode,
    encode,
    next_expiry,
    tiers,
)
from counting.codec import VERSION
from counting.contrib import (
    F_AUTOMATED,
    F_CLICK,
    F_DELIVERY,
    F_HAS_CLICKS,
    F_OPEN,
    F_REPLY,
    F_SENDING_ERROR,
    F_STATUS_EMITTED,
)
from counting.state import MessageRecord
from counting.timeutil import US_PER_SECOND
from tests.unit import codec_v1, codec_v2, codec_v3
from tests.unit import factories as f
from tests.unit.test_properties import SETTINGS, replay, scenarios

CFG = CountingConfig(bot_click_seconds=0)
_OLD_BITS = F_DELIVERY | F_OPEN | F_REPLY | F_SENDING_ERROR | F_STATUS_EMITTED | F_AUTOMATED


@dataclass
class _OldRecord:
    """A message as releases before codec 4 held it (what the frozen encoders read)."""

    channel: str
    dispatched_at: int | None
    flags: int
    first_open: int
    first_click: int
    first_reply: int
    pending_since: int
    first_event_at: int
    id_bytes: bytes = b""


def _old(record: MessageRecord) -> _OldRecord:
    clicked = bool(record.flags & F_HAS_CLICKS)
    return _OldRecord(
        record.channel,
        record.dispatched_at,
        (record.flags & _OLD_BITS) | (F_CLICK if clicked else 0),
        record.first_open,
        record.clicks[0] // US_PER_SECOND if clicked else 0,
        record.first_reply,
        record.pending_since,
        record.first_event_at,
    )


def _in_old_records(state: ContactState) -> ContactState:
    """The state with its messages as the old release's records, for its encoder."""
    return replace(
        state,
        messages={k: _old(r) for k, r in state.messages.items()},  # type: ignore[misc]
        pending={k: _old(r) for k, r in state.pending.items()},  # type: ignore[misc]
    )


def _as_read_back(record: MessageRecord) -> MessageRecord:
    """What codec 4 reads from an old value: clicks at the second kept, no delivery time."""
    old = _old(record)
    clicked = bool(record.flags & F_HAS_CLICKS)
    at = old.first_click * US_PER_SECOND
    flags = old.flags & ~F_CLICK | (F_HAS_CLICKS | F_CLICK if clicked else 0)
    if record.dispatched_at is None:
        flags &= ~F_CLICK  # a waiting click is classified when its dispatch arrives
    return MessageRecord(
        record.channel,
        record.dispatched_at,
        flags,
        old.first_open,
        old.first_reply,
        record.pending_since,
        record.first_event_at,
        clicks=(at,) if clicked else (),
    )


def _as_the_previous_release_had_it(state: ContactState, *, sent: bool = False) -> ContactState:
    """The state without what the previous releases did not keep. Before codec 3 (``sent``
    False) the channels it was sent on are read back from its messages (a dispatch that lost
    to an earlier one of the same message, on another channel, left no trace then)."""
    channels = dict(state.sent_channels)
    if not sent:
        channels = {}
        for record in state.messages.values():
            assert record.dispatched_at is not None
            channels[record.channel] = max(channels.get(record.channel, -1), record.dispatched_at)
    return replace(
        state,
        messages={k: _as_read_back(r) for k, r in state.messages.items()},
        pending={k: _as_read_back(r) for k, r in state.pending.items()},
        sent_channels=channels,
    )


def _replayed(events: list) -> ContactState:  # type: ignore[type-arg]
    return replay(events, CFG, through_codec=False) or ContactState()


def _old_release_value(stored: StoredContact) -> bytes:
    """Exactly what `agents.stored.pack` wrote before format 2."""
    published = orjson.dumps([[s, t, r] for s, (t, r) in stored.published.items()])
    head = struct.pack(">BQI", 1, stored.version, len(published))
    return head + published + codec_v1.encode(_in_old_records(stored.state))


@SETTINGS
@given(scenarios(signals=False))
def test_a_state_written_by_codec_1_reads_back_the_same(events: list) -> None:  # type: ignore[type-arg]
    state = _as_the_previous_release_had_it(_replayed(events))
    old = codec_v1.encode(_in_old_records(state))
    assert old[0] == 1
    again = decode(old, CFG)
    assert again == state
    assert list(again.seen.items()) == list(state.seen.items())
    new = encode(again)
    assert new[0] == VERSION == 4
    assert decode(new, CFG) == state


@SETTINGS
@given(scenarios(signals=False))
def test_a_table_value_of_codec_1_keeps_every_count_after_the_upgrade(
    events: list,  # type: ignore[type-arg]
) -> None:
    original = _replayed(events)
    state = _as_the_previous_release_had_it(original)
    snapshot = build_snapshot(f.ORG, f.CONTACT, state, f.NOW, CFG)
    # every figure, rate, tier and best send time is what the events gave before
    assert snapshot == build_snapshot(
        f.ORG, f.CONTACT, replace(original, sent_channels=state.sent_channels), f.NOW, CFG
    )
    published = dict(tiers(snapshot)) if snapshot is not None else {}
    stored = StoredContact(state, published, 1_780_000_000_123)

    old_value = _old_release_value(stored)
    read = unpack(old_value, CFG)
    assert (read.state, read.published, read.version) == (state, published, stored.version)
    assert build_snapshot(f.ORG, f.CONTACT, read.state, f.NOW, CFG) == snapshot
    due = next_expiry(state, CFG)
    assert peek(old_value, CFG) == (stored.version, due)  # decoded: format 1 has no header

    new_value = pack(read, due)
    assert new_value[0] == FORMAT == 2
    assert peek(new_value, CFG) == (stored.version, due)  # from the header alone
    again = unpack(new_value, CFG)
    assert (again.state, again.published, again.version) == (state, published, stored.version)


@SETTINGS
@given(scenarios(signals=False))
def test_a_version_2_value_gets_the_channels_sent_on_from_its_messages(
    events: list,  # type: ignore[type-arg]
) -> None:
    original = _replayed(events)
    value = codec_v2.encode(_in_old_records(original))  # no channels sent on
    assert value[0] == 2
    read = decode(value, CFG)
    assert read == _as_the_previous_release_had_it(original)
    # every figure is kept, and the channels it was sent on now stay shown after expiry
    assert build_snapshot(f.ORG, f.CONTACT, read, f.NOW, CFG) == build_snapshot(
        f.ORG, f.CONTACT, replace(original, sent_channels=read.sent_channels), f.NOW, CFG
    )
    assert decode(encode(read), CFG) == read


@SETTINGS
@given(scenarios(signals=False))
def test_a_version_3_value_of_the_last_release_keeps_every_count(
    events: list,  # type: ignore[type-arg]
) -> None:
    original = _replayed(events)
    value = codec_v3.encode(_in_old_records(original))  # what the last release wrote
    assert value[0] == 3
    read = decode(value, CFG)
    assert read == _as_the_previous_release_had_it(original, sent=True)
    assert read.sent_channels == original.sent_channels
    assert build_snapshot(f.ORG, f.CONTACT, read, f.NOW, CFG) == build_snapshot(
        f.ORG, f.CONTACT, original, f.NOW, CFG
    )
    assert decode(encode(read), CFG) == read


@SETTINGS
@given(scenarios(signals=False))
def test_an_old_click_soon_after_its_dispatch_is_a_bots_once_upgraded(
    events: list,  # type: ignore[type-arg]
) -> None:
    """With the default delay the old clicks are measured from their dispatch, at the second
    the old release kept: the same as replaying the events without their delivery times."""
    original = _replayed(events)
    read = decode(codec_v3.encode(_in_old_records(original)), f.CFG)
    for message_id, record in read.messages.items():
        if record.flags & F_HAS_CLICKS:
            assert record.dispatched_at is not None
            (at,) = record.clicks  # the old release kept the first click, to the second
            bot = 0 <= at - record.dispatched_at < f.CFG.bot_click_us
            assert bool(record.flags & F_CLICK) == (not bot), message_id
            assert bool(record.flags & 256) == bot, message_id  # F_BOT_CLICK


@SETTINGS
@given(scenarios())
def test_the_channels_sent_on_and_the_signals_survive_the_codec_exactly(
    events: list,  # type: ignore[type-arg]
) -> None:
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
