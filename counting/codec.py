"""Compact, versioned bytes for a contact's state (the Faust table value).

Layout, version 4 (little-endian), written since codec version 4:

    u8  version (=4)
    u8  channel count, then per channel: u8 length, UTF-8 name (the channels of the
        messages, the waiting entries and the channels sent on)
    i64 base (the oldest dispatch, µs; 0 when none), i64 first_seen µs, i64 tombstone µs
        (both: -2**63 for none), u64 dropped_pending
    u8  count of channels sent on, then per channel: u8 channel index, i64 latest dispatch µs
    u32 extras length (0 when the contact has no registration data, lists or subscription
        timeline, as most have not), then an orjson object holding the non-empty ones of
        "reg", "lists", "subs"
    then the body below.

Versions 3 and 2 (read, never written) have the same header (version 2 without the channels
sent on: a version 2 value gets them from its messages when read) and the body of version 1.

Version 1 (read, never written: a table written by an earlier release is read back as is):

    u8  version (=1)
    u32 header length, then an orjson header: channel names, registration, lists,
        subscription timelines, tombstone, first_seen, dropped_pending
    then the body below.

Body, version 4:

    u32 message count, then per message: u8 channel index, u16 flags, 48-bit dispatched_at
        in µs after the header's ``base`` (the oldest dispatch), the registers its flags
        say it holds (below), then the message id
    u32 pending count, then per entry: u8 channel index, u16 flags, i64 pending_since µs,
        i64 first_event_at µs, its registers, then the message id
    u32 ring length, then the 8-byte event digests, then their u16 UTC day numbers

Registers, only when the flags announce one: a u8 form, then, in this order, each only when
its flag is set (``counting.contrib``): u32 first open (F_OPEN), u32 first machine open
(F_MACHINE_OPEN), u32 first reply (F_REPLY), u8 n and the n unflagged click times in µs
(F_HAS_CLICKS, sorted, n <= 32), u32 first and last bot-flagged click second
(F_HAS_BOT_FLAGGED), the earliest delivery µs (F_HAS_DELIVERED_AT). A µs time is an i32
offset from the dispatch, or an i64 time when the form says so (bit 1 for the delivery, 4
for the clicks): waiting entries, and times more than 35 minutes from the dispatch. The
derived click bits (F_CLICK, F_BOT_CLICK) are recomputed on decode, so a changed
EM_BOT_CLICK_SECONDS applies to stored contacts too.

Body, versions 1-3: the same with u8 flags and, instead of the registers, a u32 first open /
click / reply for those the flags say happened (pending entries: all three, always). Flag 4
meant "clicked" then: it is read as one unflagged click at that second.

Message ids are kept (not hashed) because a late unsubscribe must name the messages it turns
into sending errors. To keep them small, an id is written as: 0xFF + 16 bytes for a
canonical lowercase UUID, 0xFE + u8 n + n bytes for lowercase even-length hex, a u8 length
< 0xFD + UTF-8 bytes, or 0xFD + u16 length + UTF-8 bytes. Day buckets and the oldest-dispatch
cache are derived, so they are rebuilt on decode rather than stored.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

from counting.clicks import CLICK_BITS, classify
from counting.config import CountingConfig
from counting.contrib import (
    F_CLICK,
    F_HAS_BOT_FLAGGED,
    F_HAS_CLICKS,
    F_HAS_DELIVERED_AT,
    F_MACHINE_OPEN,
    F_OPEN,
    F_REPLY,
    TABLE_INDEX_MASK,
)
from counting.state import ContactState, MessageRecord
from counting.timeutil import DAY_US, US_PER_SECOND

VERSION = 4
VERSION_3 = 3  # read, never written
VERSION_2 = 2  # read, never written
VERSION_1 = 1  # read, never written
_NONE = -(2**63)  # first_seen / tombstone absent
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_TWO_U32 = struct.Struct("<II")
_HEAD = struct.Struct("<qqqQ")  # base, first_seen, tombstone, dropped_pending
_SENT = struct.Struct("<Bq")  # channel index, latest dispatch µs
_MESSAGE = struct.Struct("<BHIH")  # channel, flags, dispatched_at - base (48 bits)
_PENDING = struct.Struct("<BHqq")  # channel, flags, pending_since, first_event_at
_MESSAGE_V1 = struct.Struct("<BBIH")  # versions 1-3
_PENDING_V1 = struct.Struct("<BBqqIII")
_HAS_FIRSTS_V1 = F_OPEN | F_CLICK | F_REPLY
_REGISTERS = F_OPEN | F_MACHINE_OPEN | F_REPLY | F_HAS_CLICKS | F_HAS_BOT_FLAGGED
_REGISTERS |= F_HAS_DELIVERED_AT
# The form byte in front of the registers: how the µs times are written.
_DELIVERED_FAR = 1  # delivered_at as an absolute i64 (else an i32 offset from the dispatch)
_CLICKS_FAR = 4  # click times as absolute i64 (else i32 offsets from the dispatch)
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1
# Form byte 0 and the registers of a message delivered within 35 minutes of its dispatch
# (and opened): `_registers`'s output for those flags, in one struct.
_OPENED_DELIVERED = F_OPEN | F_HAS_DELIVERED_AT
_DELIVERED_NEAR = struct.Struct("<Bi")
_OPEN_DELIVERED_NEAR = struct.Struct("<BIi")
_DEFAULT_CFG = CountingConfig()
_HEX_DIGITS = "0123456789abcdef"
assert TABLE_INDEX_MASK | _REGISTERS < 1 << 16  # the flags fit the u16


def _encode_id(text: str) -> bytes:
    # Only canonical lowercase hex decodes back to the same text, so only that is packed; the
    # check is one `strip` (empty when every character is a lowercase hex digit) rather than
    # `bytes.fromhex` in a try: most ids are not hex ("m123", Twilio's "SM…"), and a raised
    # ValueError costs more than encoding the id (py-spy: ~13 % of a checkpoint's build).
    if len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-":
        compact = text.replace("-", "")
        if len(compact) == 32 and not compact.strip(_HEX_DIGITS):
            return b"\xff" + bytes.fromhex(compact)
    if text and len(text) % 2 == 0 and len(text) <= 0x1FE and not text.strip(_HEX_DIGITS):
        raw = bytes.fromhex(text)
        return b"\xfe" + bytes((len(raw),)) + raw
    encoded = text.encode()
    if len(encoded) < 0xFD:
        return bytes((len(encoded),)) + encoded
    return b"\xfd" + struct.pack("<H", len(encoded)) + encoded


def _id_bytes(record: MessageRecord, message_id: str) -> bytes:
    """The message id as encoded, kept on the record once known: its ids never change, and a
    contact is encoded at every checkpoint that touches it."""
    id_bytes = record.id_bytes
    if not id_bytes:
        id_bytes = record.id_bytes = _encode_id(message_id)
    return id_bytes


def _decode_id(data: bytes, pos: int) -> tuple[str, int]:
    tag = data[pos]
    if tag == 0xFF:
        h = data[pos + 1 : pos + 17].hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}", pos + 17
    if tag == 0xFE:
        n = data[pos + 1]
        return data[pos + 2 : pos + 2 + n].hex(), pos + 2 + n
    if tag == 0xFD:
        (n,) = struct.unpack_from("<H", data, pos + 1)
        return data[pos + 3 : pos + 3 + n].decode(), pos + 3 + n
    return data[pos + 1 : pos + 1 + tag].decode(), pos + 1 + tag


def _unpack_firsts(data: bytes, pos: int, flags: int) -> tuple[int, int, int, int]:
    """Versions 1-3: the u32 first open / click / reply the flags announce."""
    firsts = [0, 0, 0]
    for i, flag in enumerate((F_OPEN, F_CLICK, F_REPLY)):
        if flags & flag:
            (firsts[i],) = _U32.unpack_from(data, pos)
            pos += 4
    return firsts[0], firsts[1], firsts[2], pos


def _near(at: int, dispatched_at: int | None) -> bool:
    return dispatched_at is not None and _I32_MIN <= at - dispatched_at <= _I32_MAX


def _registers(r: MessageRecord, flags: int, dispatched_at: int | None) -> bytes:
    """The form byte and the registers ``flags`` announce (only called when it has some).

    Times in µs are written as i32 offsets from the dispatch when within 35 minutes of it,
    as most deliveries and many clicks are, else as i64."""
    form = 0
    out: list[bytes] = []
    if flags & F_OPEN:
        out.append(_U32.pack(r.first_open))
    if flags & F_MACHINE_OPEN:
        out.append(_U32.pack(r.first_machine_open))
    if flags & F_REPLY:
        out.append(_U32.pack(r.first_reply))
    if flags & F_HAS_CLICKS:
        times = r.clicks
        out.append(bytes((len(times),)))
        if dispatched_at is not None and all(_near(t, dispatched_at) for t in times):
            out.extend(_I32.pack(t - dispatched_at) for t in times)
        else:
            form |= _CLICKS_FAR
            out.extend(_I64.pack(t) for t in times)
    if flags & F_HAS_BOT_FLAGGED:
        out.append(_TWO_U32.pack(r.bot_first, r.bot_last))
    if flags & F_HAS_DELIVERED_AT:
        if dispatched_at is not None and _near(r.delivered_at, dispatched_at):
            out.append(_I32.pack(r.delivered_at - dispatched_at))
        else:
            form |= _DELIVERED_FAR
            out.append(_I64.pack(r.delivered_at))
    return bytes((form,)) + b"".join(out)


def _read_time(data: bytes, pos: int, far: bool, dispatched_at: int | None) -> tuple[int, int]:
    if far or dispatched_at is None:
        return _I64.unpack_from(data, pos)[0], pos + 8
    return dispatched_at + _I32.unpack_from(data, pos)[0], pos + 4


def _read_registers(
    data: bytes, pos: int, flags: int, r: MessageRecord, dispatched_at: int | None
) -> int:
    form = data[pos]
    pos += 1
    if flags & F_OPEN:
        (r.first_open,) = _U32.unpack_from(data, pos)
        pos += 4
    if flags & F_MACHINE_OPEN:
        (r.first_machine_open,) = _U32.unpack_from(data, pos)
        pos += 4
    if flags & F_REPLY:
        (r.first_reply,) = _U32.unpack_from(data, pos)
        pos += 4
    if flags & F_HAS_CLICKS:
        far = bool(form & _CLICKS_FAR)
        count = data[pos]
        pos += 1
        times = []
        for _ in range(count):
            at, pos = _read_time(data, pos, far, dispatched_at)
            times.append(at)
        r.clicks = tuple(times)
    if flags & F_HAS_BOT_FLAGGED:
        r.bot_first, r.bot_last = _TWO_U32.unpack_from(data, pos)
        pos += 8
    if flags & F_HAS_DELIVERED_AT:
        r.delivered_at, pos = _read_time(data, pos, bool(form & _DELIVERED_FAR), dispatched_at)
    return pos


def encode(state: ContactState) -> bytes:
    messages, pending = state.messages, state.pending
    sent = state.sent_channels
    seen_channels = {r.channel for r in messages.values()}
    if pending:
        seen_channels.update(r.channel for r in pending.values())
    seen_channels.update(sent)
    channels = sorted(seen_channels)
    index = {channel: i for i, channel in enumerate(channels)}
    base = state.oldest_dispatch or 0
    parts = [bytes((VERSION, len(channels)))]
    for channel in channels:
        name = channel.encode()
        if len(name) > 255:
            raise ValueError(f"channel name longer than 255 bytes: {channel[:40]!r}...")
        parts.append(bytes((len(name),)))
        parts.append(name)
    first_seen, tombstone = state.first_seen, state.tombstone
    parts.append(
        _HEAD.pack(
            base,
            _NONE if first_seen is None else first_seen,
            _NONE if tombstone is None else tombstone,
            state.dropped_pending,
        )
    )
    parts.append(bytes((len(sent),)))
    for channel, at in sent.items():
        parts.append(_SENT.pack(index[channel], at))
    if state.registration or state.lists or state.subscriptions:
        extras: dict[str, Any] = {}
        if state.registration:
            extras["reg"] = state.registration
        if state.lists:
            extras["lists"] = state.lists
        if state.subscriptions:
            extras["subs"] = state.subscriptions
        blob = orjson.dumps(extras)
        parts.append(_U32.pack(len(blob)))
        parts.append(blob)
    else:
        parts.append(b"\0\0\0\0")
    parts.append(_U32.pack(len(messages)))
    append = parts.append
    pack = _MESSAGE.pack
    for message_id, r in messages.items():
        assert r.dispatched_at is not None
        offset = r.dispatched_at - base
        if not 0 <= offset < 1 << 48:
            raise ValueError("dispatch times span more than 8.9 years; expire the state first")
        flags = r.flags
        # Registers are set exactly when their flags are, so absent ones cost nothing.
        append(pack(index[r.channel], flags, offset & 0xFFFFFFFF, offset >> 32))
        registers = flags & _REGISTERS
        if registers:
            # The two register sets most messages have, written as `_registers` writes them
            # (form 0, then the registers in its order) in one struct call.
            delivered = r.delivered_at - r.dispatched_at
            near = _I32_MIN <= delivered <= _I32_MAX
            if near and registers == F_HAS_DELIVERED_AT:
                append(_DELIVERED_NEAR.pack(0, delivered))
            elif near and registers == _OPENED_DELIVERED:
                append(_OPEN_DELIVERED_NEAR.pack(0, r.first_open, delivered))
            else:
                append(_registers(r, flags, r.dispatched_at))
        append(_id_bytes(r, message_id))
    parts.append(_U32.pack(len(pending)))
    for message_id, r in pending.items():
        parts.append(_PENDING.pack(index[r.channel], r.flags, r.pending_since, r.first_event_at))
        if r.flags & _REGISTERS:
            parts.append(_registers(r, r.flags, None))
        parts.append(_id_bytes(r, message_id))
    parts.append(_U32.pack(len(state.seen)))
    parts.append(b"".join(state.seen))
    parts.append(struct.pack(f"<{len(state.seen)}H", *state.seen.values()))
    return b"".join(parts)


def _head_v2_to_4(
    data: bytes,
) -> tuple[list[str], int, int | None, int | None, int, dict[str, Any], int]:
    n = data[1]
    pos = 2
    channels: list[str] = []
    for _ in range(n):
        length = data[pos]
        channels.append(data[pos + 1 : pos + 1 + length].decode())
        pos += 1 + length
    base, first_seen, tombstone, dropped = _HEAD.unpack_from(data, pos)
    pos += _HEAD.size
    sent: dict[str, int] | None = None
    if data[0] >= VERSION_3:
        sent = {}
        for _ in range(data[pos]):
            ch, at = _SENT.unpack_from(data, pos + 1)
            sent[channels[ch]] = at
            pos += _SENT.size
        pos += 1
    (length,) = _U32.unpack_from(data, pos)
    pos += 4
    extras: dict[str, Any] = orjson.loads(data[pos : pos + length]) if length else {}
    pos += length
    if sent is not None:
        extras["sent"] = sent
    return (
        channels,
        base,
        None if first_seen == _NONE else first_seen,
        None if tombstone == _NONE else tombstone,
        dropped,
        extras,
        pos,
    )


def _legacy_record(
    channel: str, at: int | None, flags: int, firsts: tuple[int, int, int]
) -> MessageRecord:
    """A message of codec versions 1-3: flag 4 meant "clicked", with the first click second."""
    first_open, first_click, first_reply = firsts
    record = MessageRecord(channel, at, flags & ~F_CLICK)
    if flags & F_OPEN:
        record.first_open = first_open
    if flags & F_REPLY:
        record.first_reply = first_reply
    if flags & F_CLICK:
        record.flags |= F_HAS_CLICKS
        record.clicks = (first_click * US_PER_SECOND,)
    return record


def decode(data: bytes, cfg: CountingConfig = _DEFAULT_CFG) -> ContactState:
    """``cfg`` decides which channels track opens, from which the buckets are rebuilt, and
    the bot-click delay, from which the clicks are classified.

    Written flat (buckets and the oldest dispatch rebuilt in the same pass as the messages)
    because a worker decodes a contact for every batch that touches it.
    """
    if not data:
        raise ValueError("empty contact state")
    version = data[0]
    if VERSION_2 <= version <= VERSION:
        channels, base, first_seen, tombstone, dropped, extras, pos = _head_v2_to_4(data)
    elif version == VERSION_1:
        (head_len,) = _U32.unpack_from(data, 1)
        pos = 5 + head_len
        extras = orjson.loads(data[5:pos])
        channels, base = extras["ch"], extras["base"]
        first_seen, tombstone, dropped = extras["first"], extras["tomb"], extras["dropped"]
    else:
        raise ValueError(f"unsupported contact state version {data[:1]!r}")
    legacy = version < VERSION
    bot_us = cfg.bot_click_us
    tables = [cfg.table(channel) for channel in channels]
    days_of: list[dict[int, int]] = [{} for _ in channels]
    (count,) = _U32.unpack_from(data, pos)
    pos += 4
    unpack = (_MESSAGE_V1 if legacy else _MESSAGE).unpack_from
    size = _MESSAGE.size - legacy
    messages: dict[str, MessageRecord] = {}
    oldest: int | None = None
    for _ in range(count):
        ch, flags, low, high = unpack(data, pos)
        pos += size
        at = base + (high << 32 | low)
        if legacy:
            if flags & _HAS_FIRSTS_V1:
                first_open, first_click, first_reply, pos = _unpack_firsts(data, pos, flags)
            else:
                first_open = first_click = first_reply = 0
            record = _legacy_record(channels[ch], at, flags, (first_open, first_click, first_reply))
        else:
            record = MessageRecord(channels[ch], at, flags)
            if flags & _REGISTERS:
                pos = _read_registers(data, pos, flags, record, at)
        flags = record.flags
        if flags & CLICK_BITS:
            flags = record.flags = classify(flags, record, bot_us)
        start = pos
        tag = data[pos]
        if tag == 0xFF:
            h = data[pos + 1 : pos + 17].hex()
            message_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
            pos += 17
        else:
            message_id, pos = _decode_id(data, pos)
        record.id_bytes = data[start:pos]
        messages[message_id] = record
        days = days_of[ch]
        day = at // DAY_US
        days[day] = days.get(day, 0) + tables[ch][flags & TABLE_INDEX_MASK]
        if oldest is None or at < oldest:
            oldest = at
    (count,) = _U32.unpack_from(data, pos)
    pos += 4
    pending: dict[str, MessageRecord] = {}
    for _ in range(count):
        if legacy:
            ch, flags, since, first_at, first_open, first_click, first_reply = (
                _PENDING_V1.unpack_from(data, pos)
            )
            pos += _PENDING_V1.size
            record = _legacy_record(
                channels[ch], None, flags, (first_open, first_click, first_reply)
            )
        else:
            ch, flags, since, first_at = _PENDING.unpack_from(data, pos)
            pos += _PENDING.size
            record = MessageRecord(channels[ch], None, flags)
            if flags & _REGISTERS:
                pos = _read_registers(data, pos, flags, record, None)
        record.pending_since, record.first_event_at = since, first_at
        message_id, pos = _decode_id(data, pos)
        pending[message_id] = record
    (count,) = _U32.unpack_from(data, pos)
    pos += 4
    end = pos + 8 * count
    digests = [data[i : i + 8] for i in range(pos, end, 8)]
    days_seen = struct.unpack_from(f"<{count}H", data, end) if count else ()
    sent = extras.get("sent")
    if sent is None:
        # Written before the channels sent on were kept: its messages' channels are those.
        sent = {}
        for record in messages.values():
            at = record.dispatched_at
            assert at is not None
            if at > sent.get(record.channel, -1):
                sent[record.channel] = at
    return ContactState(
        messages=messages,
        pending=pending,
        buckets={channels[i]: days for i, days in enumerate(days_of) if days},
        subscriptions={k: [(e[0], e[1]) for e in v] for k, v in extras.get("subs", {}).items()},
        registration={k: (v[0], v[1], v[2]) for k, v in extras.get("reg", {}).items()},
        lists={k: (v[0], v[1], v[2], v[3]) for k, v in extras.get("lists", {}).items()},
        sent_channels=sent,
        seen=dict(zip(digests, days_seen, strict=True)),
        tombstone=tombstone,
        first_seen=first_seen,
        dropped_pending=dropped,
        oldest_dispatch=oldest,
    )
