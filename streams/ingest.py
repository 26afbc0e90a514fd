"""The ingest stage: input topics -> envelopes on the partition that owns each contact.

Run inside `engagement-monitor worker`, beside the Faust agent, with a plain aiokafka consumer in
its own group (``<app id>-ingest``), because Faust's per-record path costs ~110 µs a record before
an agent sees it and this stage must cost a few. Per fetch:

1. ``getmany`` from every input topic;
2. each record is routed to the partition that owns its contact (``streams.framing.route``,
   compiled: the ids from the value, the same function as the table's changelog partitioner).
   A record whose ids cannot be read goes to the partition number it was read from; the
   processor dead-letters it there, with the reason, like every other invalid record. Records
   over ``EM_MAX_RECORD_BYTES`` are dead-lettered here, since an envelope must stay under the
   broker's message size;
3. one envelope per owning partition (split at ``EM_ENVELOPE_MAX_BYTES``), carrying each record's
   source topic, partition, offset, key, value and headers, sent with an idempotent producer,
   ``acks=all``;
4. once the broker has acknowledged every envelope, the fetch's input offsets are committed
   (at most every ``COMMIT_EVERY_SECONDS``: each commit is a write to ``__consumer_offsets``).

What a fetch and a commit cost does not depend on how many records they carry (a fetch request
names every input partition, 64 of them for eight topics of eight partitions, encoded and decoded
in Python). Under a steady light stream the broker would answer each fetch as soon as any
producer's batch arrived, hundreds of times a second: measured at 2,000 ev/s, the ingest spent
43 % of a core, mostly writing fetch, commit and produce requests to its sockets, beside a broker
as busy. So the broker holds a fetch until ``FETCH_MIN_BYTES`` are there or ``FETCH_MAX_WAIT_MS``
have passed (a backlog fills it at once, so this costs a backlog nothing), and commits are paced.
That wait is also what an idle ingest pays per fetch: measured with no traffic, 10 ms kept the
ingest at 15 % of a core and the broker at 13 %, 25 ms at 7.5 % and 8 %; at 2,000 ev/s, 25 ms
took the ingest from 21 % to 14 % of a core for 8 ms more at p50 and the same p99.

A crash between 3 and 4 sends the same records again (new envelopes): the counting core makes a
replayed event change nothing. A commit refused after a rebalance does the same, on whichever
worker now reads that input partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from mode import Service

from streams.dead_letters import dead_letter_headers
from streams.framing import frame

log = logging.getLogger("engagement_monitor.ingest")

RETRY_SECONDS = 1.0
# A fetch waits on the broker for this many bytes, or this long (see the module's docstring).
FETCH_MIN_BYTES = 256 * 1024
FETCH_MAX_WAIT_MS = 25
# Input offsets are committed at most this often (and once more when the ingest stops): a
# crash reads again what followed the last commit, which the counting core makes harmless.
COMMIT_EVERY_SECONDS = 0.1

Headers = list[tuple[str, bytes]]


class IngestStats:
    """What the worker's metrics read (counted here, exported by agents.metrics)."""

    def __init__(self) -> None:
        self.records = 0
        self.envelopes = 0
        self.oversize = 0
        self.commit_failures = 0
        self.last_fetch_at = 0.0
        # Per assigned input partition, the offset after the last record framed (partitions
        # not framed from since they were assigned are not known: no lag is said for them).
        self.next_offsets: dict[TopicPartition, int] = {}
        # The last fetch brought all it was allowed to (`max_records`): more was waiting.
        self.last_fetch_full = False


class Ingest(Service):
    """The ingest loop as a mode service, started and stopped with the Faust app."""

    def __init__(
        self,
        *,
        bootstrap: str,
        group_id: str,
        inputs: Sequence[str],
        envelope_topic: str,
        partitions: int,
        max_records: int,
        max_wait_seconds: float,
        max_record_bytes: int,
        max_envelope_bytes: int,
        session_timeout_seconds: float = 60.0,
        dead_letter_topic: str,
        shorts: Mapping[str, str] | None = None,
        channels: tuple[str, ...] = (),
        crash: Callable[[str], None] = lambda _point: None,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.inputs = tuple(inputs)
        self.envelope_topic = envelope_topic
        # Input topic -> its unprefixed name, and the channels: the engagement records are
        # validated here (`streams.framing.read`); None: every record goes as read.
        self.shorts = shorts
        self.channels = channels
        self.partitions = partitions
        self.max_records = max_records
        self.max_wait_ms = max(1, int(max_wait_seconds * 1000))
        self.max_record_bytes = max_record_bytes
        self.max_envelope_bytes = max_envelope_bytes
        self.session_timeout_ms = int(session_timeout_seconds * 1000)
        self.dead_letter_topic = dead_letter_topic
        self.crash_point = crash
        self.stats = IngestStats()
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.assigned: frozenset[TopicPartition] = frozenset()
        self._committing: asyncio.Future[None] | None = None
        # Offsets whose envelopes were acknowledged, not yet committed (`_commit_when_due`).
        self._to_commit: dict[TopicPartition, int] = {}
        self._commit_started_at = 0.0
        self.clock = clock  # paces the commits

    async def on_start(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            max_batch_size=self.max_envelope_bytes + 65536,
            max_request_size=self.max_envelope_bytes + 262144,
        )
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            *self.inputs,
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=1048576,
            fetch_min_bytes=FETCH_MIN_BYTES,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=min(3000, self.session_timeout_ms // 3),
            # Framing a fetch takes milliseconds, but a landing in the same process can keep
            # the loop busy for a while under a backlog: leave room before the group gives up.
            max_poll_interval_ms=max(300_000, self.session_timeout_ms * 5),
        )
        await self.consumer.start()
        self.add_future(self._run())

    async def on_stop(self) -> None:
        with contextlib.suppress(KafkaError):
            await self.committed()
            await self._commit_when_due(force=True)
            await self.committed()
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    def lag(self) -> dict[TopicPartition, int]:
        """Input records not yet framed, per assigned input partition framed from since its
        assignment (what the broker knows; up to its last stable offset when it has one)."""
        consumer = self.consumer
        if consumer is None:
            return {}
        lags: dict[TopicPartition, int] = {}
        for tp, framed in self.stats.next_offsets.items():
            if tp not in self.assigned:
                continue
            try:
                high = consumer.highwater(tp)
                stable = consumer.last_stable_offset(tp)
            except Exception:  # not fetched from yet
                continue
            if stable is not None and stable >= 0:
                high = stable if high is None else min(high, stable)
            if high is not None:
                lags[tp] = max(0, high - framed)
        return lags

    async def _run(self) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        while not self.should_stop:
            try:
                fetched = await consumer.getmany(
                    timeout_ms=self.max_wait_ms, max_records=self.max_records
                )
            except KafkaError as exc:
                log.warning("ingest fetch failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            assigned = frozenset(consumer.assignment())
            if assigned != self.assigned:
                # A partition that comes back later starts from its last commit, not from
                # where this ingest had framed it to.
                for tp in self.stats.next_offsets.keys() - assigned:
                    del self.stats.next_offsets[tp]
                self.assigned = assigned
            self.stats.last_fetch_full = (
                sum(len(records) for records in fetched.values()) >= self.max_records
            )
            if not fetched:
                await self._commit_when_due()  # the stream went quiet: commit what is left
                continue
            try:
                await self._forward(fetched)
            except KafkaError as exc:
                # Envelopes not acknowledged (the broker is away, say): nothing was committed
                # for this fetch, so read it again from the last commit once Kafka answers.
                # Envelopes that did reach Kafka become duplicates, which change nothing.
                log.warning("ingest could not write envelopes (%s); reading again", exc)
                self._committing = None
                await asyncio.sleep(RETRY_SECONDS)
                with contextlib.suppress(KafkaError):
                    await consumer.seek_to_committed()

    async def committed(self) -> None:
        """Wait for the commit in flight, if any."""
        committing, self._committing = self._committing, None
        if committing is not None:
            await committing

    async def _commit_when_due(self, force: bool = False) -> None:
        """Start committing the offsets framed and acknowledged so far, if the last commit
        started `COMMIT_EVERY_SECONDS` ago (or `force`) and has finished: one commit in flight
        at a time, so they stay in order."""
        if not self._to_commit:
            return
        committing = self._committing
        if committing is not None and not committing.done() and not force:
            return
        if not force and self.clock() - self._commit_started_at < COMMIT_EVERY_SECONDS:
            return
        await self.committed()
        offsets, self._to_commit = self._to_commit, {}
        self._commit_started_at = self.clock()
        self._committing = asyncio.ensure_future(self._commit(offsets))

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self.consumer is not None
        # Partitions revoked since their fetch are left out (aiokafka refuses to commit them):
        # their new owner reads those records again from the last commit, which is harmless.
        assigned = self.consumer.assignment()
        kept = {
            tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items() if tp in assigned
        }
        try:
            if kept:
                await self.consumer.commit(kept)
        except CommitFailedError as exc:
            # The group rebalanced since this fetch: the new owner reads these records again.
            self.stats.commit_failures += 1
            log.info(
                "ingest commit refused after a rebalance (%s); the records will be re-read", exc
            )
        self.crash_point("ingest-after-commit")

    async def _forward(
        self, fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        assert self.consumer is not None and self.producer is not None
        routed = frame(
            fetched,
            self.partitions,
            self.max_record_bytes,
            self.max_envelope_bytes,
            self.shorts,
            self.channels,
        )
        sent: list[Awaitable[Any]] = []
        for partition, envelope, _count in routed.envelopes:
            sent.append(
                await self.producer.send(self.envelope_topic, envelope, partition=partition)
            )
        now = datetime.now(UTC)
        for record in routed.oversize:
            value = record.value or b""
            headers = dead_letter_headers(
                record.topic,
                record.partition,
                record.offset,
                list(record.headers or ()),
                f"oversize: {len(value)} bytes > {self.max_record_bytes}",
                "oversize",
                now,
            )
            sent.append(
                await self.producer.send(
                    self.dead_letter_topic, value, key=record.key, headers=headers
                )
            )
        await asyncio.gather(*sent)
        self.crash_point("ingest-after-send")
        # Committed only now that its envelopes are acknowledged, while the next fetches are
        # framed, when due (`_commit_when_due`).
        self._to_commit.update(routed.offsets)
        self.stats.next_offsets.update(routed.offsets)  # framed: out of the lag (`lag`)
        await self._commit_when_due()
        self.stats.records += routed.records
        self.stats.envelopes += len(routed.envelopes)
        self.stats.oversize += len(routed.oversize)
        self.stats.last_fetch_at = time.monotonic()
