"""The table value of one contact: its counting state plus the tiers last published for it.

The published tiers live beside the state, in the same table value, so that "what changed since
the previous snapshot" survives restarts and rebalances exactly like the counts do: one changelog
record carries both, and a replayed batch sees the tiers it already published.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import orjson

from counting import ContactState, CountingConfig, TierMap, decode, encode

FORMAT = 1
_HEADER = struct.Struct(">BQI")  # format, version, length of the published-tiers JSON

# scope (None = overall) -> (tier, rate)
Published = TierMap


@dataclass(slots=True)
class StoredContact:
    """`version` counts the writes of this contact; Redis refuses a snapshot older than the one
    it holds, so a late write from a worker that just lost the partition cannot win."""

    state: ContactState
    published: Published = field(default_factory=dict)
    version: int = 0


def pack(stored: StoredContact) -> bytes:
    tiers = orjson.dumps([[scope, tier, rate] for scope, (tier, rate) in stored.published.items()])
    return _HEADER.pack(FORMAT, stored.version, len(tiers)) + tiers + encode(stored.state)


def unpack(raw: bytes, cfg: CountingConfig) -> StoredContact:
    fmt, version, length = _HEADER.unpack_from(raw)
    if fmt != FORMAT:
        raise ValueError(f"unknown stored contact format {fmt}")
    start = _HEADER.size
    rows = orjson.loads(raw[start : start + length])
    published: Published = {row[0]: (row[1], row[2]) for row in rows}
    return StoredContact(decode(raw[start + length :], cfg), published, version)
