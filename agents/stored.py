"""The table value of one contact: its counting state plus the tiers last published for it.

The published tiers live beside the state, in the same table value, so that "what changed since
the previous snapshot" survives restarts and rebalances exactly like the counts do: one changelog
record carries both, and a replayed batch sees the tiers it already published.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import orjson

from counting import ContactState, CountingConfig, decode, encode

FORMAT = 1
_HEADER = struct.Struct(">BI")  # format, length of the published-tiers JSON

# scope (None = overall) -> (tier, rate)
Published = dict[str | None, tuple[str | None, float | None]]


@dataclass(slots=True)
class StoredContact:
    state: ContactState
    published: Published = field(default_factory=dict)


def pack(stored: StoredContact) -> bytes:
    tiers = orjson.dumps([[scope, tier, rate] for scope, (tier, rate) in stored.published.items()])
    return _HEADER.pack(FORMAT, len(tiers)) + tiers + encode(stored.state)


def unpack(raw: bytes, cfg: CountingConfig) -> StoredContact:
    version, length = _HEADER.unpack_from(raw)
    if version != FORMAT:
        raise ValueError(f"unknown stored contact format {version}")
    start = _HEADER.size
    rows = orjson.loads(raw[start : start + length])
    published: Published = {row[0]: (row[1], row[2]) for row in rows}
    return StoredContact(decode(raw[start + length :], cfg), published)
