"""The one way the worker and the API connect to Redis: bounded waits, one quick retry.

A call unanswered within `EM_REDIS_TIMEOUT_SECONDS` raises (an outage, handled by the caller:
`agents.redis_outage` in the worker, a 503 in the API) instead of hanging. A connection that
died with a restarted server is retried once on a fresh one, so the first call after a restart
does not fail.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


def connect(url: str, timeout_seconds: float, **options: Any) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **options,
    )
