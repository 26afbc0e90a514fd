"""Train the zstd dictionary snapshots are stored with (engagement_monitor/snapshot_codec.py).

    .venv/bin/python scripts/train_dictionary.py --dict-id 1402 [--seed 1] [--contacts 6000]

Builds snapshots the way the worker does, from the simulator's stream (its personas, channels,
lists, registration data and origins), trains a dictionary on them and writes it beside the
code. Give it a new id, add the file to ``DICTIONARIES`` (readers keep every id ever shipped)
and point ``CURRENT_DICTIONARY`` at it. An operator with real traffic can train on a sample of
real snapshots instead (``--from-redis URL``): names, e-mail domains and origins differ from the
simulator's, and a dictionary made of them compresses better.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.snapshots import simulated_snapshots  # noqa: E402

SIZE = 32_768  # 64 KiB saves ~4% more; 32 KiB keeps the package small (BENCHMARKS.md)


async def redis_snapshots(url: str, limit: int) -> list[bytes]:
    import redis.asyncio as aioredis

    from engagement_monitor.snapshot_codec import unpack_snapshot

    client = aioredis.from_url(url)
    out: list[bytes] = []
    async for key in client.scan_iter(match="em:v2:{*}:snap:*", count=1000):
        raw = await client.get(key)
        if raw:
            out.append(unpack_snapshot(raw))
        if len(out) >= limit:
            break
    await client.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dict-id", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--contacts", type=int, default=6000)
    parser.add_argument("--from-redis", metavar="URL")
    args = parser.parse_args()
    samples = (
        asyncio.run(redis_snapshots(args.from_redis, args.contacts))
        if args.from_redis
        else simulated_snapshots(args.seed, args.contacts)
    )
    trained = zstandard.train_dictionary(SIZE, samples, dict_id=args.dict_id)
    held_out = simulated_snapshots(args.seed + 1, 2000)
    compressor = zstandard.ZstdCompressor(level=3, dict_data=trained)
    sizes = [len(compressor.compress(s)) for s in held_out]
    target = ROOT / "engagement_monitor" / "dictionaries" / f"snapshot-{args.dict_id}.zdict"
    target.write_bytes(trained.as_bytes())
    json_size, stored_size = statistics.mean(map(len, held_out)), statistics.mean(sizes)
    print(
        f"{target.relative_to(ROOT)}: {len(trained.as_bytes())} B from {len(samples)} snapshots; "
        f"held-out JSON {json_size:.0f} B -> {stored_size:.0f} B"
    )


if __name__ == "__main__":
    main()
