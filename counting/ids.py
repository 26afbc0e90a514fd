"""Stable 64-bit digests of event ids.

Python's ``hash`` is salted per process, and these digests are persisted by the codec and
compared after a restart, so a keyed-free cryptographic digest is used instead. 64 bits keep
the chance of two of a contact's 256 remembered events colliding negligible (~1e-15).
"""

from __future__ import annotations

from hashlib import blake2b


def digest(event_id: str) -> bytes:
    return blake2b(event_id.encode(), digest_size=8).digest()


def tie(event_digest: bytes) -> int:
    """A non-negative 63-bit integer for last-writer-wins ties (fits orjson and int64)."""
    return int.from_bytes(event_digest, "big") >> 1
