"""Writes snapshot and segment changes to Redis: one pipelined round trip per batch.

Redis is a cache of the tables, so a Redis outage must not lose anything: the writer retries
with backoff and holds the batch (and therefore the offset commit) until Redis answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agents.processor import RedisOp
from engagement_monitor import keyspace as ks
from engagement_monitor import redis_layout as rl

log = logging.getLogger(__name__)


class RedisSink:
    def __init__(self, url: str, app_id: str) -> None:
        self.client = aioredis.Redis.from_url(url, socket_timeout=10, health_check_interval=30)
        self.app_id = app_id
        self._upsert = self.client.register_script(rl.UPSERT_LUA)
        self._delete = self.client.register_script(rl.DELETE_LUA)

    async def close(self) -> None:
        await self.client.aclose()

    async def apply(self, ops: Sequence[RedisOp]) -> None:
        if not ops:
            return
        delay = 0.2
        while True:
            try:
                await self._apply_once(ops)
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("Redis unavailable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _apply_once(self, ops: Sequence[RedisOp]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for op in ops:
                keys = [
                    ks.redis_snapshot_key(op.org_id, op.contact_id),
                    ks.redis_membership_key(op.org_id, op.contact_id),
                ]
                if op.snapshot is None:
                    await self._delete(keys=keys, args=[op.version], client=pipe)
                else:
                    args: list[bytes | str | int] = [op.version, op.snapshot]
                    for segment, member in op.segments:
                        args += [segment, member]
                    await self._upsert(keys=keys, args=args, client=pipe)
            await pipe.execute()

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
                    purged += int(await self.client.unlink(*batch))
                    batch = []
            if batch:
                purged += int(await self.client.unlink(*batch))
        return purged

    async def missing_sentinels(self, partitions: Sequence[int]) -> list[int]:
        if not partitions:
            return []
        values = await self.client.mget([ks.redis_sentinel_key(self.app_id, p) for p in partitions])
        return [p for p, v in zip(partitions, values, strict=True) if v is None]

    async def set_sentinels(self, partitions: Sequence[int]) -> None:
        if partitions:
            await self.client.mset(
                {ks.redis_sentinel_key(self.app_id, p): b"1" for p in partitions}
            )
