"""The table value of one contact: its counting state plus the tiers last published for it.

The published tiers live beside the state, in the same table value, so that "what changed since
the previous snapshot" survives restarts and rebalances exactly like the counts do: one changelog
record carries both, and a replayed batch sees the tiers it already published.

Format 2 (big-endian header), written since the checkpoint pipeline:

    u8 format (=2), u64 version, i64 next expiry (epoch seconds, -1: none),
    u32 length of the published-tiers JSON, the JSON, then the encoded state (`counting.codec`)

The JSON is the list of published `[scope, tier, rate]` rows or, for a contact whose tier
has changed within the window, `{"p": rows, "h": history}`, the tier changes of the window
(SPEC §7.4 `tier-history`), oldest first, each `[changed_at, channel, previous_tier, tier,
rate, cause]`: kept here, beside the tiers they explain, so that they survive restarts,
rebalances and a Redis rebuild like the counts do.

The next expiry is in the header so that a worker taking over a partition can index every
contact's expiry (and compare versions with Redis) from the header alone, without decoding
the state. Format 1 (no expiry field) is still read: a table written by an earlier release
is upgraded as its contacts are written again.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from counting import ContactState, CountingConfig, TierMap, decode, encode, next_expiry
from counting.timeutil import to_us

FORMAT = 2
FORMAT_1 = 1  # read, never written
_HEADER = struct.Struct(">BQqI")  # format, version, next expiry, length of the tiers JSON
_HEADER_1 = struct.Struct(">BQI")  # format, version, length of the tiers JSON
_NO_EXPIRY = -1

# scope (None = overall) -> (tier, rate)
Published = TierMap


# A tier change as stored: [changed_at (RFC 3339), channel or None, previous, tier, rate, cause]
HistoryEntry = list[Any]
HISTORY_MAX = 100  # the most recent changes of the window a contact keeps


@lru_cache(maxsize=1024)
def history_moment(changed_at: str) -> tuple[int, int]:
    """(µs since the epoch, whole seconds) of a history row's `changed_at`. Cached: the rows a
    checkpoint adds share one time, and each row is read at every checkpoint of its contact."""
    moment = datetime.fromisoformat(changed_at)
    return to_us(moment), int(moment.timestamp())


@dataclass(slots=True, init=False)
class StoredContact:
    """`version` counts the writes of this contact; Redis refuses a snapshot older than the one
    it holds, so a late write from a worker that just lost the partition cannot win."""

    state: ContactState
    published: Published = field(default_factory=dict)
    version: int = 0
    history: list[HistoryEntry] = field(default_factory=list)

    # init=False: a dataclass's generated __init__ runs interpreted even in a compiled module;
    # this one is compiled (`engagement_monitor.native`).
    def __init__(
        self,
        state: ContactState,
        published: Published | None = None,
        version: int = 0,
        history: list[HistoryEntry] | None = None,
    ) -> None:
        self.state = state
        self.published = {} if published is None else published
        self.version = version
        self.history = [] if history is None else history


def pack(stored: StoredContact, due: int | None) -> bytes:
    """`due`: the state's next expiry (`counting.next_expiry`), which the caller has at hand."""
    rows = [[scope, tier, rate] for scope, (tier, rate) in stored.published.items()]
    tiers = orjson.dumps({"p": rows, "h": stored.history} if stored.history else rows)
    head = _HEADER.pack(FORMAT, stored.version, _NO_EXPIRY if due is None else due, len(tiers))
    return head + tiers + encode(stored.state)


def unpack(raw: bytes, cfg: CountingConfig) -> StoredContact:
    fmt = raw[0]
    if fmt == FORMAT:
        _, version, _, length = _HEADER.unpack_from(raw)
        start = _HEADER.size
    elif fmt == FORMAT_1:
        _, version, length = _HEADER_1.unpack_from(raw)
        start = _HEADER_1.size
    else:
        raise ValueError(f"unknown stored contact format {fmt}")
    doc = orjson.loads(raw[start : start + length])
    rows, history = (doc["p"], doc["h"]) if isinstance(doc, dict) else (doc, [])
    published: Published = {row[0]: (row[1], row[2]) for row in rows}
    return StoredContact(decode(raw[start + length :], cfg), published, version, history)


def peek(raw: bytes, cfg: CountingConfig) -> tuple[int, int | None]:
    """(version, next expiry) of a stored contact, from its header alone when it has them."""
    if raw[0] == FORMAT:
        _, version, due, _ = _HEADER.unpack_from(raw)
        return version, None if due == _NO_EXPIRY else due
    stored = unpack(raw, cfg)
    return stored.version, next_expiry(stored.state, cfg)
