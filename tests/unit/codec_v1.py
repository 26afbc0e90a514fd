"""FROZEN: the contact-state codec of the release before codec version 2, for the upgrade test.

A worker upgraded over a table written by this release must read every value back
(`tests/unit/test_codec_upgrade.py`). Copied from counting/codec.py at 5a881fb; never edit.

Layout, version 1 (little-endian):

    u8  version (=1)
    u32 header length, then an orjson header: channel names, registration, lists,
        subscription timelines, tombstone, first_seen, dropped_pending
    u32 message count, then per message: u8 channel index, u8 flags, 48-bit dispatched_at
        in µs after the header's ``base`` (the oldest dispatch), a u32 epoch-second first
        open / click / reply only for those the flags say happened, then the message id
    u32 pending count, then per entry: u8 channel index, u8 flags, i64 pending_since µs,
        i64 first_event_at µs, u32 first open / click / reply, then the message id
    u32 ring length, then the 8-byte event digests, then their u16 UTC day numbers

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

from counting.config import CountingConfig
from counting.contrib import F_CLICK, F_OPEN, F_REPLY, TABLE_INDEX_MASK
from counting.state import ContactState, MessageRecord
from counting.timeutil import DAY_US

VERSION = 1
_U32 = struct.Struct("<I")
_MESSAGE = struct.Struct("<BBIH")  # channel, flags, dispatched_at - base (48 bits)
_PENDING = struct.Struct("<BBqqIII")
_HAS_FIRSTS = F_OPEN | F_CLICK | F_REPLY
_HEX = frozenset("0123456789abcdef")
_DEFAULT_CFG = CountingConfig()


def _encode_id(text: str) -> bytes:
    if len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-":
        compact = text.replace("-", "")
        if len(compact) == 32 and _HEX.issuperset(compact):
            return b"\xff" + bytes.fromhex(compact)
    if text and len(text) % 2 == 0 and _HEX.issuperset(text):
        return b"\xfe" + bytes((len(text) // 2,)) + bytes.fromhex(text)
    raw = text.encode()
    if len(raw) < 0xFD:
        return bytes((len(raw),)) + raw
    return b"\xfd" + struct.pack("<H", len(raw)) + raw


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


def _pack_firsts(record: MessageRecord) -> bytes:
    # first_* is set exactly when the matching evidence flag is, so absent ones cost nothing.
    flags = record.flags
    out = b""
    if flags & F_OPEN:
        out += _U32.pack(record.first_open)
    if flags & F_CLICK:
        out += _U32.pack(record.first_click)
    if flags & F_REPLY:
        out += _U32.pack(record.first_reply)
    return out


def _unpack_firsts(data: bytes, pos: int, flags: int) -> tuple[int, int, int, int]:
    firsts = [0, 0, 0]
    for i, flag in enumerate((F_OPEN, F_CLICK, F_REPLY)):
        if flags & flag:
            (firsts[i],) = _U32.unpack_from(data, pos)
            pos += 4
    return firsts[0], firsts[1], firsts[2], pos


def encode(state: ContactState) -> bytes:
    channels = sorted(
        {r.channel for r in state.messages.values()} | {r.channel for r in state.pending.values()}
    )
    index = {channel: i for i, channel in enumerate(channels)}
    base = state.oldest_dispatch or 0
    header: dict[str, Any] = {
        "ch": channels,
        "base": base,
        "reg": state.registration,
        "lists": state.lists,
        "subs": state.subscriptions,
        "tomb": state.tombstone,
        "first": state.first_seen,
        "dropped": state.dropped_pending,
    }
    head = orjson.dumps(header)
    parts = [bytes((VERSION,)), _U32.pack(len(head)), head, _U32.pack(len(state.messages))]
    pack = _MESSAGE.pack
    for message_id, r in state.messages.items():
        assert r.dispatched_at is not None
        offset = r.dispatched_at - base
        if not 0 <= offset < 1 << 48:
            raise ValueError("dispatch times span more than 8.9 years; expire the state first")
        parts.append(pack(index[r.channel], r.flags, offset & 0xFFFFFFFF, offset >> 32))
        parts.append(_pack_firsts(r))
        parts.append(_encode_id(message_id))
    parts.append(_U32.pack(len(state.pending)))
    for message_id, r in state.pending.items():
        parts.append(
            _PENDING.pack(
                index[r.channel],
                r.flags,
                r.pending_since,
                r.first_event_at,
                r.first_open,
                r.first_click,
                r.first_reply,
            )
        )
        parts.append(_encode_id(message_id))
    parts.append(_U32.pack(len(state.seen)))
    parts.append(b"".join(state.seen))
    parts.append(struct.pack(f"<{len(state.seen)}H", *state.seen.values()))
    return b"".join(parts)


def decode(data: bytes, cfg: CountingConfig = _DEFAULT_CFG) -> ContactState:
    """``cfg`` decides which channels track opens, from which the buckets are rebuilt.

    Written flat (buckets and the oldest dispatch rebuilt in the same pass as the messages)
    because a worker decodes a contact for every batch that touches it.
    """
    if not data or data[0] != VERSION:
        raise ValueError(f"unsupported contact state version {data[:1]!r}")
    (head_len,) = _U32.unpack_from(data, 1)
    pos = 5 + head_len
    header = orjson.loads(data[5:pos])
    channels: list[str] = header["ch"]
    tables = [cfg.table(channel) for channel in channels]
    days_of: list[dict[int, int]] = [{} for _ in channels]
    (count,) = _U32.unpack_from(data, pos)
    pos += 4
    unpack = _MESSAGE.unpack_from
    size = _MESSAGE.size
    messages: dict[str, MessageRecord] = {}
    base: int = header["base"]
    oldest: int | None = None
    for _ in range(count):
        ch, flags, low, high = unpack(data, pos)
        pos += size
        if flags & _HAS_FIRSTS:
            first_open, first_click, first_reply, pos = _unpack_firsts(data, pos, flags)
        else:
            first_open = first_click = first_reply = 0
        tag = data[pos]
        if tag == 0xFF:
            h = data[pos + 1 : pos + 17].hex()
            message_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
            pos += 17
        else:
            message_id, pos = _decode_id(data, pos)
        at = base + (high << 32 | low)
        messages[message_id] = MessageRecord(
            channels[ch], at, flags, first_open, first_click, first_reply
        )
        days = days_of[ch]
        day = at // DAY_US
        days[day] = days.get(day, 0) + tables[ch][flags & TABLE_INDEX_MASK]
        if oldest is None or at < oldest:
            oldest = at
    (count,) = _U32.unpack_from(data, pos)
    pos += 4
    pending: dict[str, MessageRecord] = {}
    for _ in range(count):
        ch, flags, since, first_at, first_open, first_click, first_reply = _PENDING.unpack_from(
            data, pos
        )
        message_id, pos = _decode_id(data, pos + _PENDING.size)
        pending[message_id] = MessageRecord(
            channels[ch], None, flags, first_open, first_click, first_reply, since, first_at
        )
    (count,) = _U32.unpack_from(data, pos)
    pos += 4
    end = pos + 8 * count
    digests = [data[i : i + 8] for i in range(pos, end, 8)]
    days_seen = struct.unpack_from(f"<{count}H", data, end) if count else ()
    return ContactState(
        messages=messages,
        pending=pending,
        buckets={channels[i]: days for i, days in enumerate(days_of) if days},
        subscriptions={k: [(e[0], e[1]) for e in v] for k, v in header["subs"].items()},
        registration={k: (v[0], v[1], v[2]) for k, v in header["reg"].items()},
        lists={k: (v[0], v[1], v[2], v[3]) for k, v in header["lists"].items()},
        seen=dict(zip(digests, days_seen, strict=True)),
        tombstone=header["tomb"],
        first_seen=header["first"],
        dropped_pending=header["dropped"],
        oldest_dispatch=oldest,
    )
