"""When a checkpoint under a backlog may wait past `EM_CHECKPOINT_MAX_SECONDS`
(`agents.checkpoint_pace`): only while its latest entries fall on contacts it already holds,
and never past `STRETCH_LIMIT` times the setting."""

from __future__ import annotations

import pytest

from agents.checkpoint_pace import (
    COALESCING_SHARE,
    LINGER_FLOOR_ENTRIES,
    SAMPLE_ENTRIES,
    STRETCH_LIMIT,
    Coalescing,
    backlog_checkpoint_due,
    keeping_up_checkpoint_due,
)
from agents.processor import EngagementProcessor
from tests.agents.test_processor import NOW as PROCESSOR_NOW
from tests.agents.test_processor import Clock, Table, ago, dispatch, feed, make, rec

MAX = 5.0


def test_not_due_before_the_setting_whatever_the_share() -> None:
    for share in (None, 0.0, 1.0):
        assert not backlog_checkpoint_due(MAX - 0.01, MAX, share)


def test_due_at_the_setting_when_not_measured_or_when_new_contacts_come() -> None:
    assert backlog_checkpoint_due(MAX, MAX, None)
    assert backlog_checkpoint_due(MAX, MAX, 1.0)
    assert backlog_checkpoint_due(MAX, MAX, COALESCING_SHARE + 0.01)


def test_waits_on_while_the_entries_fall_on_contacts_already_dirty() -> None:
    assert not backlog_checkpoint_due(MAX, MAX, COALESCING_SHARE)
    assert not backlog_checkpoint_due(MAX * STRETCH_LIMIT - 0.01, MAX, 0.0)


def test_never_past_the_stretch_limit() -> None:
    assert backlog_checkpoint_due(MAX * STRETCH_LIMIT, MAX, 0.0)


def test_the_share_is_measured_over_enough_entries_and_afresh_per_checkpoint() -> None:
    pace = Coalescing()
    pace.observe(SAMPLE_ENTRIES - 1, 900)
    assert pace.new_share is None  # too few entries to say
    pace.observe(2 * SAMPLE_ENTRIES, 1_500)
    assert pace.new_share == pytest.approx(1_500 / (2 * SAMPLE_ENTRIES))
    assert pace.due(MAX, MAX)  # most entries made new contacts dirty: no use waiting
    pace.observe(4 * SAMPLE_ENTRIES, 1_600)  # 2,000 entries, 100 new contacts
    assert pace.new_share == pytest.approx(100 / (2 * SAMPLE_ENTRIES))
    assert not pace.due(MAX, MAX)
    pace.observe(4 * SAMPLE_ENTRIES, 1_600)  # no new entries (the timer): nothing changes
    assert pace.new_share == pytest.approx(100 / (2 * SAMPLE_ENTRIES))
    pace.reset()  # a checkpoint began
    assert pace.new_share is None
    assert pace.due(MAX, MAX)
    pace.observe(3 * SAMPLE_ENTRIES, 100)
    assert pace.new_share == pytest.approx(100 / (3 * SAMPLE_ENTRIES))


def test_a_checkpoint_seen_to_begin_without_reset_starts_a_new_measurement() -> None:
    pace = Coalescing()
    pace.observe(5 * SAMPLE_ENTRIES, 4_000)
    pace.observe(6 * SAMPLE_ENTRIES, 4_010)
    assert pace.new_share is not None and pace.new_share < COALESCING_SHARE
    pace.observe(10, 10)  # fewer entries than before: a new checkpoint's
    assert pace.new_share is None


def _measured(proc: EngagementProcessor, pace: Coalescing) -> None:
    pace.observe(proc.pending.entries, len(proc.cache.dirty))


@pytest.mark.parametrize("returning", [True, False])
def test_measured_from_the_processors_pending_entries_and_dirty_contacts(
    returning: bool,
) -> None:
    """The worker feeds `Coalescing` the processor's counts: the same contacts coming back
    make the share small (wait), new contacts make it large (land)."""
    proc = make(Table(), Clock(PROCESSOR_NOW))
    pace = Coalescing()
    contacts = [f"c{i}" for i in range(SAMPLE_ENTRIES)]
    feed(proc, [rec("dispatch", dispatch(c, f"m-{c}-0", ago(hours=2))) for c in contacts])
    _measured(proc, pace)
    assert pace.new_share == pytest.approx(1.0)
    later = contacts if returning else [f"n{i}" for i in range(SAMPLE_ENTRIES)]
    feed(proc, [rec("dispatch", dispatch(c, f"m-{c}-1", ago(hours=1))) for c in later])
    _measured(proc, pace)
    assert pace.new_share == pytest.approx(0.0 if returning else 1.0)
    assert pace.due(MAX, MAX) is not returning


LINGER = 0.02


def test_caught_up_with_the_envelopes_and_the_ingest_lands_at_once() -> None:
    assert keeping_up_checkpoint_due(0, 0, 40, 2, 0.001, LINGER)
    assert keeping_up_checkpoint_due(0, LINGER_FLOOR_ENTRIES - 1, 40, 2, 0.001, LINGER)


def test_caught_up_with_the_envelopes_but_not_the_ingest_is_a_backlog() -> None:
    # The start of a backlog: the agent applied the first envelopes while the ingest has
    # 150,000 records left to frame. Neither at once nor after the linger.
    for age in (0.001, LINGER, 1.0):
        assert not keeping_up_checkpoint_due(0, 150_000, 5_000, 20, age, LINGER)


def test_a_steady_stream_kept_up_with_lands_after_the_linger() -> None:
    # 20,000 ev/s: 400 entries in the linger, two envelopes of 200 behind, 300 unframed.
    assert not keeping_up_checkpoint_due(2, 300, 400, 2, LINGER / 2, LINGER)
    assert keeping_up_checkpoint_due(2, 300, 400, 2, LINGER, LINGER)


def test_envelopes_far_behind_wait_for_the_backlog_rules() -> None:
    assert not keeping_up_checkpoint_due(200, 0, 10_000, 50, LINGER, LINGER)
