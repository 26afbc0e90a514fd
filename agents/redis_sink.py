"""Writes snapshot and segment changes to Redis: one round trip per checkpoint, one script
call per org and chunk of contacts.

What changed for a contact (`agents.processor.SnapshotWrite`) becomes Redis keys and segment
members in `agents.redis_args` (compiled with the hot modules); this module sends them.

Every call makes one attempt and raises if Redis does not answer in time
(`engagement_monitor.redis_client`). Redis is a cache of the tables: what to do during an
outage (count on, rebuild later) is `agents.redis_outage`'s decision, not this writer's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis.asyncio as aioredis

from agents.processor import SnapshotWrite
from agents.redis_args import script_calls
from engagement_monitor import keyspace as ks
from engagement_monitor import redis_layout as rl
from engagement_monitor.redis_client import connect

log = logging.getLogger(__name__)

CHUNK = 200  # contacts per script call: long enough to amortise a call, short enough not to
# hold Redis (single-threaded) for more than a millisecond or two


class RedisSink:
    def __init__(
        self,
        url: str,
        app_id: str,
        timeout_seconds: float = 5.0,
        *,
        cluster: bool = False,
        client: aioredis.Redis | None = None,
    ) -> None:
        """``cluster``: ``url`` is a node of a Redis Cluster (EM_REDIS_CLUSTER); ``client``:
        write through this one (a caller's, which it closes) instead of connecting."""
        self.client = (
            client if client is not None else connect(url, timeout_seconds, cluster=cluster)
        )
        self.app_id = app_id

    async def close(self) -> None:
        await self.client.aclose()

    async def ping(self) -> None:
        await self.client.ping()

    async def apply(self, writes: Sequence[SnapshotWrite]) -> None:
        """Write these contacts: one script call per org and chunk, all in one round trip."""
        if not writes:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for keys, args in script_calls(writes, CHUNK):
                # EVAL, not EVALSHA: the body (4 KB beside ~60 KB of arguments) travels
                # with every call, so a restarted server or cluster node never answers
                # NOSCRIPT; Redis still compiles it once and caches it by its digest.
                pipe.eval(rl.WRITE_CONTACTS_LUA, len(keys), *keys, *args)
            await pipe.execute()

    async def versions(self, contacts: Sequence[tuple[str, str]]) -> list[int | None]:
        """The version Redis holds for each (org, contact); None where it holds none."""
        if not contacts:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for org_id, contact_id in contacts:
                pipe.hget(ks.redis_membership_key(org_id, contact_id), rl.VERSION_FIELD)
            held = await pipe.execute()
        return [None if value is None else int(value) for value in held]

    async def purge_legacy(self, chunk: int = 1000) -> int:
        """Delete every key of the layout before ``engagement_monitor.keyspace`` (issue 17).

        That layout joined ids without escaping, so its keys are ambiguous between orgs; none is
        ever read again, and the v2 keys are rebuilt from the tables (their sentinels are new, so
        every worker re-snapshots its partitions). Idempotent: run once at every start-up.
        """
        purged = 0
        for pattern in ks.LEGACY_REDIS_PATTERNS:
            batch: list[bytes] = []
            async for key in self.client.scan_iter(match=pattern, count=chunk):
                batch.append(key)
                if len(batch) >= chunk:
                    purged += await self._unlink(batch)
                    batch = []
            if batch:
                purged += await self._unlink(batch)
        return purged

    async def _unlink(self, keys: Sequence[bytes | str]) -> int:
        """Keys of any slots: one command each, pipelined (a cluster client sends each to its
        node; a multi-key UNLINK would be refused across slots)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.unlink(key)
            return sum(int(n) for n in await pipe.execute())

    async def missing_sentinels(self, partitions: Sequence[int]) -> list[int]:
        if not partitions:
            return []
        async with self.client.pipeline(transaction=False) as pipe:  # sentinels: many slots
            for p in partitions:
                pipe.get(ks.redis_sentinel_key(self.app_id, p))
            values = await pipe.execute()
        return [p for p, v in zip(partitions, values, strict=True) if v is None]

    async def set_sentinels(self, partitions: Sequence[int]) -> None:
        if partitions:
            async with self.client.pipeline(transaction=False) as pipe:
                for p in partitions:
                    pipe.set(ks.redis_sentinel_key(self.app_id, p), b"1")
                await pipe.execute()

    async def drop_sentinels(self, partitions: Sequence[int]) -> None:
        """Ask every worker to rewrite these partitions' contacts (`resnapshot`)."""
        await self._unlink([ks.redis_sentinel_key(self.app_id, p) for p in partitions])
