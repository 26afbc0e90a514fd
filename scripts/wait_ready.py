"""Wait until a Kafka broker or a Redis server really answers, not just until its port is open.

A KRaft broker accepts TCP connections before it can serve metadata, so a port check would let
tests start against a broker that is still electing itself controller.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time


async def kafka_ready(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        await admin.list_topics()
        brokers = await admin.describe_cluster()
        return bool(brokers.get("brokers"))
    except Exception:
        return False
    finally:
        await admin.close()


async def redis_ready(target: str) -> bool:
    import redis.asyncio as aioredis

    url = target if "://" in target else f"redis://{target}/0"
    client = aioredis.Redis.from_url(url, socket_timeout=2)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["kafka", "redis"])
    parser.add_argument("address")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--pid", type=int, help="give up early when this process has died")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # connection refusals while starting are expected
    probe = kafka_ready if args.kind == "kafka" else redis_ready
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if asyncio.run(probe(args.address)):
            return 0
        if args.pid is not None:
            try:
                os.kill(args.pid, 0)
            except OSError:
                print(f"{args.kind}: process {args.pid} exited", file=sys.stderr)
                return 1
        time.sleep(0.5)
    print(f"{args.kind} at {args.address}: no answer after {args.timeout:.0f} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
