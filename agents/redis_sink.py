"""Writes snapshot and segment changes to Redis: one pipelined round trip per batch.

Every call makes one attempt and raises if Redis does not answer in time
(`engagement_monitor.redis_client`). Redis is a cache of the tables: what to do during an
outage (count on, rebuild later) is `agents.redis_outage`'s decision, not this writer's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agents.processor import RedisOp
from engagement_monitor import keyspace as ks
from engagement_monitor import redis_layout as rl
from engagement_monitor.redis_client import connect

log = logging.getLogger(__name__)


class RedisSink:
    def __init__(self, url: str, app_id: str, timeout_seconds: float = 5.0) -> None:
        self.client = connect(url, timeout_seconds)
        self.app_id = app_id
        self._upsert = self.client.register_script(rl.UPSERT_LUA)
        self._delete = self.client.register_script(rl.DELETE_LUA)

    async def close(self) -> None:
        await self.client.aclose()

    async def ping(self) -> None:
        await self.client.ping()

    async def apply(self, ops: Sequence[RedisOp]) -> None:
        if not ops:
            return
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
