"""The harness's garbage-collection recorder and heap freeze (`bench.common`)."""

from __future__ import annotations

import gc

from bench.common import HarnessPauses, freeze_heap


def test_collections_while_recording_are_counted_and_timed_then_no_more() -> None:
    pauses = HarnessPauses().start()
    try:
        gc.collect()
        gc.collect()
    finally:
        pauses.stop()
    summary = pauses.summary()
    assert summary["collections"] == 2
    assert 0 <= summary["max_ms"] <= summary["total_ms"]
    gc.collect()
    assert pauses.summary() == summary  # stopped: the callback is gone
    pauses.stop()  # twice is harmless


def test_a_frozen_heap_is_left_out_of_full_collections() -> None:
    held = [[i] for i in range(50_000)]  # noqa: F841 (alive while frozen)
    try:
        frozen = freeze_heap()
        assert frozen >= 50_000
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
