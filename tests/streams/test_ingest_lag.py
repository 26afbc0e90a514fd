"""The ingest's lag (`streams.ingest.Ingest.lag`) and its report's `full` flag: what the
worker's checkpoints read to tell a backlog from a stream they keep up with. No broker."""

from __future__ import annotations

from aiokafka import TopicPartition

from streams.ingest import Ingest
from streams.ingest_process import IngestReport, _sum, report_of
from tests.streams.test_ingest_commits import ingest_without_broker

A = TopicPartition("engagement.dispatch", 0)
B = TopicPartition("engagement.delivery", 3)
C = TopicPartition("engagement.open", 5)


class Consumer:
    def __init__(self) -> None:
        self.high: dict[TopicPartition, int] = {}
        self.stable: dict[TopicPartition, int] = {}

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.high.get(tp)

    def last_stable_offset(self, tp: TopicPartition) -> int | None:
        return self.stable.get(tp, -1)


def _ingest() -> tuple[Ingest, Consumer]:
    ingest = ingest_without_broker()
    consumer = Consumer()
    ingest.consumer = consumer
    ingest.assigned = frozenset({A, B, C})
    return ingest, consumer


def test_the_lag_counts_what_follows_the_records_framed_up_to_the_stable_offset() -> None:
    ingest, consumer = _ingest()
    consumer.high = {A: 1_000, B: 50, C: 1_000_000}
    consumer.stable = {B: 40}  # an open transaction: its records cannot be read yet
    ingest.stats.next_offsets.update({A: 900, B: 30})
    # C was never framed from since its assignment (say, a restart with everything committed
    # and no traffic since): its highwater says nothing of what is left, so it is left out.
    assert ingest.lag() == {A: 100, B: 10}


def test_a_partition_no_longer_assigned_has_no_lag() -> None:
    ingest, consumer = _ingest()
    consumer.high = {A: 1_000}
    ingest.stats.next_offsets[A] = 10
    ingest.assigned = frozenset({B})
    assert ingest.lag() == {}


def test_a_full_last_fetch_is_reported_and_survives_the_sum() -> None:
    ingest, _consumer = _ingest()
    ingest.stats.last_fetch_full = True
    report = report_of(ingest)
    assert report.full
    assert _sum([IngestReport(), report]).full
    assert not _sum([IngestReport(), IngestReport()]).full
