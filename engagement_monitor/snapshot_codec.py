"""The stored form of a snapshot (and of a tier history) in Redis: its JSON compressed with zstd
and a dictionary trained on snapshots (issue 14), so that ten million contacts fit in a few GB
of Redis.

A snapshot's JSON is ~1.6 KB, mostly the same field names and figures in every contact; with a
dictionary of those, zstd (level 3) makes it ~200 B in ~3 µs, and gives the JSON back in ~1.5
µs. The API serves the JSON it gets back as it is: byte for byte what the worker built (no
parsing, no re-encoding), so a reader cannot tell the stored form from the JSON.

Every value says how to read it: a JSON document starts with `{` or `[`; a zstd frame starts
with zstd's magic number and names its dictionary by id. Readers keep every dictionary ever shipped
(`DICTIONARIES`), so a worker writing with a newer one never makes older readers fail silently:
they fail loudly naming the id, and a rolling upgrade ships readers first. Plain JSON (what
releases before this one wrote) is read as it is, so no migration step is needed.

The one source of the dictionary in use is `CURRENT_DICTIONARY`; `scripts/train_dictionary.py`
trains a new one from the simulator's snapshots (or from a Redis export of real ones).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import zstandard

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
LEVEL = 3  # level 9 saves ~15% more at 8x the worker's time; 19 at 120x (BENCHMARKS.md)
DICTIONARIES: dict[int, str] = {1401: "snapshot-1401.zdict"}  # dictionary id -> file
CURRENT_DICTIONARY = 1401


class UnknownDictionary(ValueError):
    """A stored snapshot names a dictionary this release does not have."""


@cache
def _dictionary(dict_id: int) -> zstandard.ZstdCompressionDict:
    name = DICTIONARIES.get(dict_id)
    if name is None:
        raise UnknownDictionary(
            f"snapshot compressed with dictionary {dict_id}, which this release does not have "
            f"(it has {sorted(DICTIONARIES)}): upgrade the readers first"
        )
    data = resources.files("engagement_monitor.dictionaries").joinpath(name).read_bytes()
    made = zstandard.ZstdCompressionDict(data)
    if made.dict_id() != dict_id:
        raise UnknownDictionary(f"{name} holds dictionary {made.dict_id()}, not {dict_id}")
    return made


@cache
def _compressor() -> zstandard.ZstdCompressor:
    # write_content_size lets readers size their buffer; no checksum: Redis is not a disk,
    # and a snapshot is rebuilt from the tables anyway.
    return zstandard.ZstdCompressor(
        level=LEVEL,
        dict_data=_dictionary(CURRENT_DICTIONARY),
        write_content_size=True,
        write_checksum=False,
        write_dict_id=True,
    )


@cache
def _decompressor(dict_id: int) -> zstandard.ZstdDecompressor:
    return zstandard.ZstdDecompressor(dict_data=_dictionary(dict_id))


def pack_snapshot(json: bytes) -> bytes:
    """The stored form of a snapshot's JSON."""
    return _compressor().compress(json)


def unpack_snapshot(stored: bytes | str) -> bytes:
    """The snapshot's JSON, exactly as the worker built it, from what Redis holds (a client
    that decodes responses hands a str: only plain JSON can come back that way)."""
    if isinstance(stored, str):
        stored = stored.encode()
    if stored[:1] in (b"{", b"["):
        return stored  # written before compression, or by a tool
    if stored[:4] != ZSTD_MAGIC:
        raise ValueError("a stored snapshot is neither JSON nor a zstd frame")
    dict_id = zstandard.get_frame_parameters(stored).dict_id
    return _decompressor(dict_id).decompress(stored)


def check_dictionaries() -> None:
    """Load every shipped dictionary once, at start-up: a broken package fails there, naming
    the file, rather than on the first read."""
    for dict_id in DICTIONARIES:
        _dictionary(dict_id)
    _compressor()
