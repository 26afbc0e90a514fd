"""Scenario 8's load generator: signed SendGrid batches into the API's webhook, from its own
process, as fast as the API takes them (SPEC §7.5).

Each request is a batch of BATCH `delivered` events, signed with the test key (ECDSA P-256, as
SendGrid signs); CONCURRENCY requests are in flight at once, as SendGrid's senders post in
parallel. A 202 means Kafka holds every event of the batch (acks=all), so events per second
here are events per second *into Kafka*. Signing happens before the clock starts.

    python -m bench.apps.webhook_load URL KEY_PEM_FILE CONTACTS_JSON BATCHES BATCH CONCURRENCY

Prints one JSON object: events, seconds, events/s, request latency p50/p99 and status counts.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.common import percentile


def batches(
    contacts: list[str], count: int, size: int, key: ec.EllipticCurvePrivateKey
) -> list[tuple[bytes, dict[str, str]]]:
    now = int(time.time())
    out = []
    n = 0
    for b in range(count):
        events = []
        for _ in range(size):
            contact = contacts[n % len(contacts)]
            events.append(
                {
                    "email": f"{n}@example.com",
                    "timestamp": now - 60,
                    "event": "delivered",
                    "sg_event_id": f"bench-{b}-{n}",
                    "sg_message_id": f"sg.bench.{n}",
                    "response": "250 OK",
                    "em_contact_id": contact,
                    "em_message_id": f"bench-webhook-{n}",
                }
            )
            n += 1
        body = orjson.dumps(events)
        stamp = str(int(time.time()))
        signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        headers = {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }
        out.append((body, headers))
    return out


async def main(
    url: str, key_file: str, contacts: list[str], count: int, size: int, concurrency: int
) -> None:
    loaded = serialization.load_pem_private_key(Path(key_file).read_bytes(), None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    work = batches(contacts, count, size, loaded)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    published = 0
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def post(body: bytes, headers: dict[str, str]) -> None:
            nonlocal published
            async with gate:
                started = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as r:
                        answer = await r.read()
                        statuses[str(r.status)] += 1
                        if r.status == 202:
                            published += orjson.loads(answer)["published"]
                except (aiohttp.ClientError, TimeoutError) as exc:
                    statuses[type(exc).__name__] += 1
                    return
                latencies.append(time.perf_counter() - started)

        await post(*work[0])  # warm up: the producer connects on the first write
        published = 0
        statuses.clear()
        latencies.clear()
        start = time.perf_counter()
        await asyncio.gather(*(post(body, headers) for body, headers in work[1:]))
        elapsed = time.perf_counter() - start
    latencies.sort()
    print(
        orjson.dumps(
            {
                "requests": len(work) - 1,
                "batch": size,
                "concurrency": concurrency,
                "events": published,
                "seconds": elapsed,
                "events_per_second": published / elapsed if elapsed else None,
                "p50_ms": percentile(latencies, 50) * 1000 if latencies else None,
                "p99_ms": percentile(latencies, 99) * 1000 if latencies else None,
                "statuses": dict(statuses),
            }
        ).decode()
    )


if __name__ == "__main__":
    url, key_file, contacts_json, count, size, concurrency = sys.argv[1:7]
    asyncio.run(
        main(url, key_file, orjson.loads(contacts_json), int(count), int(size), int(concurrency))
    )
