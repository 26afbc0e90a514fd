"""`streams.partitioning.murmur2` (compiled with the hot modules) must be Kafka's murmur2 bit for
bit: it decides which partition owns a contact, for the ingest, the table and its changelog."""

from __future__ import annotations

from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.partitioning import murmur2, partition_for


@settings(max_examples=2000)
@given(st.binary(max_size=300))
def test_murmur2_is_kafkas(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)


def test_known_keys() -> None:
    # Every tail length (0-3 bytes after the 4-byte blocks), zero bytes and non-ASCII ids.
    for key in (b"", b"a", b"ab", b"abc", b"123456789", b"\x00" * 9, "org:contact-é".encode()):
        assert murmur2(key) == aiokafka_murmur2(key)
    assert (
        partition_for(b"org-1:contact-1", 8)
        == (aiokafka_murmur2(b"org-1:contact-1") & 0x7FFFFFFF) % 8
    )
