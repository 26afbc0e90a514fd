"""The one way the worker and the API connect to Redis: bounded waits, one quick retry.

A call unanswered within `EM_REDIS_TIMEOUT_SECONDS` raises (an outage, handled by the caller:
`agents.redis_outage` in the worker, a 503 in the API) instead of hanging. A connection that
died with a restarted server is retried once on a fresh one, so the first call after a restart
does not fail.
"""

from __future__ import annotations

from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import (
    BlockingConnectionPool,
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class _HiredisPacking:
    """Commands packed by hiredis (C) instead of redis-py's asyncio packer (Python, ~0.6 µs an
    argument): a checkpoint sends a few arguments per contact for thousands of contacts.

    Same contract as redis-py's `pack_command`: a command name holding spaces ("SCRIPT LOAD")
    is split into words; arguments are bytes, str, int or float.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0]
        if isinstance(name, str):
            args = (*name.encode().split(), *args[1:])
        elif b" " in name:
            args = (*name.split(), *args[1:])
        return [hiredis.pack_command(args)]


class HiredisConnection(_HiredisPacking, Connection):
    pass


class HiredisSSLConnection(_HiredisPacking, SSLConnection):
    pass


class HiredisUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


_PACKING = {
    Connection: HiredisConnection,
    SSLConnection: HiredisSSLConnection,
    UnixDomainSocketConnection: HiredisUnixConnection,
}


def connect(
    url: str, timeout_seconds: float, *, cluster: bool = False, **options: Any
) -> aioredis.Redis:
    """A client for the Redis at ``url``, or (``cluster``, EM_REDIS_CLUSTER) for the Redis
    Cluster that ``url`` is any node of.

    A cluster client offers the same commands and is typed as one here: callers keep every
    multi-key command and every transaction inside one org (one hash tag, one slot), and touch
    keys of several slots only through pipelines of single-key commands, which a cluster client
    sends to each key's node."""
    if cluster:
        return cast(
            aioredis.Redis,
            RedisCluster.from_url(
                url,
                socket_timeout=timeout_seconds,
                socket_connect_timeout=timeout_seconds,
                health_check_interval=30,
                retry=Retry(NoBackoff(), 1),
                retry_on_error=[RedisConnectionError, RedisTimeoutError],
                **{
                    k: v
                    for k, v in options.items()
                    if k not in ("connection_class", "max_connections")
                },
                # per node; a cluster client's pool cannot wait for a free connection, so it is
                # sized for bursts rather than bounded tight (see the single-node pool below)
                max_connections=max(1024, options.get("max_connections", 0)),
            ),
        )
    settings: dict[str, Any] = {
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
        "health_check_interval": 30,
        "retry": Retry(NoBackoff(), 1),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        **options,
        **parse_url(url),  # as Redis.from_url: what the URL says wins
    }
    plain = settings.get("connection_class", Connection)
    settings["connection_class"] = _PACKING.get(plain, plain)
    if "max_connections" in settings:
        # A bounded pool that waits for a free connection (up to the timeout) rather than
        # failing at once: a burst of requests (the API at thousands of rps) must queue, not
        # get "Too many connections" answered as 503.
        return aioredis.Redis(
            connection_pool=BlockingConnectionPool(timeout=timeout_seconds, **settings)
        )
    return aioredis.Redis(connection_pool=ConnectionPool(**settings))
