"""The stored form of snapshots (issue 14): the JSON comes back byte for byte, for thousands of
snapshots the worker would build from a stream the dictionary was not trained on, and for any
JSON at all; plain JSON (what earlier releases wrote) still reads; a dictionary this release
does not have fails loudly."""

from __future__ import annotations

import statistics

import orjson
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from engagement_monitor.snapshot_codec import (
    CURRENT_DICTIONARY,
    UnknownDictionary,
    check_dictionaries,
    pack_snapshot,
    unpack_snapshot,
)
from simulator.snapshots import simulated_snapshots


@pytest.fixture(scope="module")
def snapshots() -> list[bytes]:
    # seed 7: not the stream the shipped dictionary was trained on (seed 1)
    return simulated_snapshots(seed=7, contacts=3000)


def test_every_snapshot_comes_back_byte_for_byte(snapshots: list[bytes]) -> None:
    assert len(snapshots) > 2500
    stored = [pack_snapshot(s) for s in snapshots]
    assert [unpack_snapshot(s) for s in stored] == snapshots
    # the served document is the same, field for field
    for raw, packed in zip(snapshots[:200], stored[:200], strict=True):
        assert orjson.loads(unpack_snapshot(packed)) == orjson.loads(raw)
    # and small: the point of the stored form (JSON ~1.6 KB)
    assert statistics.mean(map(len, stored)) < 0.2 * statistics.mean(map(len, snapshots))
    assert zstandard.get_frame_parameters(stored[0]).dict_id == CURRENT_DICTIONARY


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=8))
def test_any_json_object_round_trips(doc: dict[str, object]) -> None:
    raw = orjson.dumps(doc)
    assert unpack_snapshot(pack_snapshot(raw)) == raw


def test_plain_json_of_earlier_releases_is_read_as_it_is() -> None:
    raw = b'{"org_id":"acme","contact_id":"1"}'
    assert unpack_snapshot(raw) == raw
    assert unpack_snapshot(raw.decode()) == raw  # a client that decodes responses


def test_unknown_dictionary_and_garbage_fail_loudly() -> None:
    other = zstandard.train_dictionary(
        4096, [orjson.dumps({"k": i, "v": "x" * (i % 50)}) for i in range(400)], dict_id=999_999
    )
    foreign = zstandard.ZstdCompressor(dict_data=other).compress(b'{"a":1}')
    with pytest.raises(UnknownDictionary, match="999999"):
        unpack_snapshot(foreign)
    with pytest.raises(ValueError, match="neither JSON nor a zstd frame"):
        unpack_snapshot(b"\x00garbage")
    check_dictionaries()  # the shipped ones load
