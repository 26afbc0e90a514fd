"""Write actions of the screen as commands on Kafka (SPEC §5).

The API never touches a snapshot: it publishes a record the worker accepts on ``contact`` or
``unsubscribe`` (the shapes of ``models.events``), or a send request on ``send-requests`` for the
messaging pipeline, and answers 202. The worker applies the command like any other event, so an
edit made through the screen is deduplicated, ordered by event time and counted exactly like one
that came from a producer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaProducer

from engagement_monitor.keyspace import record_key

log = logging.getLogger(__name__)


Headers = Sequence[tuple[str, bytes]]
# (full topic, key, value bytes, headers) of one record of a batch
RawRecord = tuple[str, bytes | None, bytes, Headers]


class PublishUnavailable(RuntimeError):
    """Kafka cannot take the command right now; the API answers 503 and nothing was accepted."""


class Publisher(Protocol):
    """Where commands go; the Kafka producer in production, a list in some tests."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(
        self, topic: str, key: str, value: dict[str, Any], headers: Headers = ()
    ) -> None: ...

    async def publish_many(self, records: Sequence[RawRecord]) -> None: ...

    @property
    def state(self) -> str: ...


def now_iso() -> str:
    """Event time of a command: now, UTC, RFC 3339 with an explicit offset."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_id() -> str:
    return str(uuid.uuid4())


_COMMAND_IDS = uuid.UUID("5b0c7c1e-9f4a-4d2b-8c3e-6a1f0e2d4b71")


def actor_headers(name: str, role: str) -> list[tuple[str, bytes]]:
    """Who asked, on every command record the API publishes (UTF-8 text)."""
    return [("em-actor-name", name.encode()), ("em-actor-role", role.encode())]


def audit_record(
    org_id: str,
    contact_id: str,
    *,
    actor_name: str,
    actor_role: str,
    action: str,
    command_topic: str,
    command_id: str,
    idempotency_key: str | None,
) -> dict[str, Any]:
    """The `audit` record of one accepted write (`models.outputs.AuditRecord`)."""
    return {
        "at": now_iso(),
        "org_id": org_id,
        "contact_id": contact_id,
        "actor": {"name": actor_name, "role": actor_role},
        "action": action,
        "command_topic": command_topic,
        "command_id": command_id,
        "idempotency_key": idempotency_key,
    }


def command_id(org_id: str, topic: str, idempotency_key: str) -> str:
    """The id of a command sent with an `Idempotency-Key`: the same for every retry of it, and
    never the same as another org's or another kind of command's with the same key."""
    return str(uuid.uuid5(_COMMAND_IDS, f"{org_id}\x1f{topic}\x1f{idempotency_key}"))


def contact_key(org_id: str, contact_id: str) -> str:
    """The canonical record key (SPEC §2), so the command lands on the contact's own partition.

    The worker takes the ids from the value, never from this key (``engagement_monitor.keyspace``).
    """
    return record_key(org_id, contact_id).decode()


def _contact_record(org_id: str, contact_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": new_id(),
        "org_id": org_id,
        "contact_id": contact_id,
        "occurred_at": now_iso(),
        "type": kind,
        **fields,
    }


def upsert_record(org_id: str, contact_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` holds only the fields the caller set (an explicit None clears a field)."""
    return _contact_record(org_id, contact_id, "upsert", **changes)


def delete_record(org_id: str, contact_id: str) -> dict[str, Any]:
    return _contact_record(org_id, contact_id, "delete")


def list_added_record(
    org_id: str, contact_id: str, list_id: str, list_name: str | None
) -> dict[str, Any]:
    extra = {"list_name": list_name} if list_name is not None else {}
    return _contact_record(org_id, contact_id, "list_added", list_id=list_id, **extra)


def list_removed_record(org_id: str, contact_id: str, list_id: str) -> dict[str, Any]:
    return _contact_record(org_id, contact_id, "list_removed", list_id=list_id)


def unsubscribe_record(org_id: str, contact_id: str, channel: str) -> dict[str, Any]:
    return {
        "event_id": new_id(),
        "org_id": org_id,
        "contact_id": contact_id,
        "channel": channel,
        "occurred_at": now_iso(),
    }


def send_request_record(
    org_id: str,
    contact_id: str,
    channel: str,
    *,
    text: str | None,
    template_id: str | None,
    variables: dict[str, str],
    requested_by: str,
) -> dict[str, Any]:
    """The ``send-requests`` record: what the messaging pipeline needs to send one message.

    ``request_id`` lets that pipeline deduplicate a retried request; it is expected to emit the
    resulting ``dispatch`` event itself (with its own message id), which is what the monitor
    counts.
    """
    return {
        "request_id": new_id(),
        "org_id": org_id,
        "contact_id": contact_id,
        "channel": channel,
        "text": text,
        "template_id": template_id,
        "variables": variables,
        "requested_by": requested_by,
        "requested_at": now_iso(),
    }


class KafkaPublisher:
    """aiokafka producer, started lazily so the read side works while Kafka is unreachable.

    ``acks="all"`` and awaiting the delivery mean a 202 is only given once Kafka holds the
    command; idempotence stops a producer retry from writing it twice. See `publish` for what a
    503 means.
    """

    def __init__(self, bootstrap: str, *, timeout_s: float = 10.0) -> None:
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    @property
    def state(self) -> str:
        return "connected" if self._producer is not None else "not connected"

    async def start(self) -> None:
        """Try to connect now; failure is logged, and the next write tries again."""
        try:
            await self._ensure()
        except PublishUnavailable as exc:
            log.warning("%s; writes will retry on demand", exc)

    async def _ensure(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is not None:
                return self._producer
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                acks="all",
                enable_idempotence=True,
                linger_ms=0,
                request_timeout_ms=int(self._timeout_s * 1000),
            )
            try:
                await asyncio.wait_for(producer.start(), self._timeout_s)
            except Exception as exc:
                await _quiet_stop(producer)
                raise PublishUnavailable(
                    f"Kafka at {self._bootstrap} is unreachable ({type(exc).__name__})"
                ) from exc
            self._producer = producer
            return producer

    async def publish(
        self, topic: str, key: str, value: dict[str, Any], headers: Headers = ()
    ) -> None:
        """Return once Kafka holds the command; raise `PublishUnavailable` when it has not
        confirmed it within `timeout_s`.

        A command not confirmed may still arrive: while the broker is away the producer keeps
        it and retries (aiokafka gives a batch up only when the partition has no leader), so
        Kafka takes it once it is back. That is why the API answers 503 "try again with the
        same Idempotency-Key": a retry then carries the same id, and is counted once.
        """
        producer = await self._ensure()
        try:
            await asyncio.wait_for(
                producer.send_and_wait(
                    topic, orjson.dumps(value), key=key.encode(), headers=list(headers)
                ),
                self._timeout_s,
            )
        except Exception as exc:
            raise PublishUnavailable(
                f"Kafka did not accept the command on {topic} ({type(exc).__name__})"
            ) from exc

    async def publish_many(self, records: Sequence[RawRecord]) -> None:
        """Return once Kafka holds every record (all sent at once, then awaited together: a
        webhook batch of 1,000 events costs about one round trip, not 1,000); raise
        `PublishUnavailable` otherwise. A failed batch may be partly written: its records
        carry stable ids, so the provider's retry makes duplicates that count once."""
        producer = await self._ensure()
        try:
            futures = [
                await producer.send(topic, value, key=key, headers=list(headers))
                for topic, key, value, headers in records
            ]
            await asyncio.wait_for(asyncio.gather(*futures), self._timeout_s)
        except Exception as exc:
            raise PublishUnavailable(
                f"Kafka did not accept {len(records)} record(s) ({type(exc).__name__})"
            ) from exc

    async def stop(self) -> None:
        async with self._lock:
            if self._producer is not None:
                await _quiet_stop(self._producer)
                self._producer = None


async def _quiet_stop(producer: AIOKafkaProducer) -> None:
    try:
        await producer.stop()
    except Exception:  # pragma: no cover - best effort on shutdown
        log.debug("producer stop failed", exc_info=True)


@dataclass
class MemoryPublisher:
    """Keeps published commands in a list: for tests and for trying the API without Kafka."""

    sent: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    headers: list[Headers] = field(default_factory=list)  # of each sent record, in order
    raw: list[RawRecord] = field(default_factory=list)  # what publish_many was given
    fail: bool = False

    @property
    def state(self) -> str:
        return "memory"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(
        self, topic: str, key: str, value: dict[str, Any], headers: Headers = ()
    ) -> None:
        if self.fail:
            raise PublishUnavailable("memory publisher set to fail")
        self.sent.append((topic, key, value))
        self.headers.append(list(headers))

    async def publish_many(self, records: Sequence[RawRecord]) -> None:
        if self.fail:
            raise PublishUnavailable("memory publisher set to fail")
        self.raw.extend(records)
