"""Scenario 5's load generator: GET snapshots at a fixed request rate, from its own process.

Open loop: request i is due at `start + i / rate` whether or not earlier ones have answered,
and its latency is measured from when it was *due*, so a slow server (or a slow generator)
shows up in the figures instead of silently lowering the offered rate (coordinated omission).

    python -m bench.apps.http_load URL_TEMPLATE TOKEN CONTACTS_JSON RATE SECONDS

URL_TEMPLATE contains `{contact}`; CONTACTS_JSON is a JSON list of contact ids. Prints one JSON
object: latencies in ms (p50, p99, ...), status counts, how late requests were launched.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter

import aiohttp
import orjson

from bench.common import percentile


async def main(template: str, token: str, contacts: list[str], rate: float, seconds: float) -> None:
    total = int(rate * seconds)
    latencies: list[float] = []
    launch_lag: list[float] = []
    statuses: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=128, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as s:

        async def one(i: int, due: float) -> None:
            launch_lag.append(time.perf_counter() - due)
            try:
                async with s.get(template.format(contact=contacts[i % len(contacts)])) as r:
                    await r.read()
                    statuses[str(r.status)] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1
                return
            latencies.append(time.perf_counter() - due)

        # warm the connection pool
        for _ in range(3):
            await one(0, time.perf_counter())
        latencies.clear()
        launch_lag.clear()
        statuses.clear()
        tasks = []
        start = time.perf_counter()
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    latencies.sort()
    launch_lag.sort()
    ms = [x * 1000 for x in latencies]
    print(
        orjson.dumps(
            {
                "requests": total,
                "ok": statuses.get("200", 0),
                "statuses": dict(statuses),
                "offered_rps": rate,
                "achieved_rps": total / elapsed if elapsed else 0.0,
                "p50_ms": percentile(ms, 50),
                "p90_ms": percentile(ms, 90),
                "p99_ms": percentile(ms, 99),
                "max_ms": ms[-1] if ms else float("nan"),
                "launch_lag_p99_ms": percentile([x * 1000 for x in launch_lag], 99),
            }
        ).decode()
    )


if __name__ == "__main__":
    url, tok, contacts_json, rate_s, seconds_s = sys.argv[1:6]
    asyncio.run(main(url, tok, orjson.loads(contacts_json), float(rate_s), float(seconds_s)))
