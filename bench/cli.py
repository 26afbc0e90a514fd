"""`engagement-monitor bench` (and `python -m bench`): run the benchmark harness.

`add_arguments` / `run` are what the project CLI wires in; `main` lets the harness run on its own.
Kafka and Redis are taken from the settings (EM_KAFKA_BOOTSTRAP, EM_REDIS_URL); EM_PARTITIONS
sets the partition count of every topic the benchmark creates.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench.names import SCENARIOS
from engagement_monitor.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:  # the harness pulls in Kafka, Redis and the counting core: only for `run`
    from bench.harness import BenchConfig

ROOT = Path(__file__).resolve().parents[1]

# Small enough for a smoke run in well under a minute per scenario.
QUICK = {
    "events": 20_000,
    "contacts": 2_000,
    "orgs": 4,
    "naive_budget": 20.0,
    "latency_seconds": 8.0,
    "latency_warmup_seconds": 3.0,
    "api_seconds": 5.0,
    "recovery_contacts": 10_000,
    "check_sample": 0,
    "webhook_batches": 21,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("backlog")
    g.add_argument("--events", type=int, help="records in the backlog (default 200,000)")
    g.add_argument("--contacts", type=int, help="contacts (default 20,000)")
    g.add_argument("--orgs", type=int, help="organizations (default 20)")
    g.add_argument(
        "--messages", type=int, help="generate exactly this many messages (overrides --events)"
    )
    g.add_argument(
        "--mix",
        help="event mix, e.g. 'delivery=0.9,open=0.45,click=0.35,reply=0.15,unsubscribe=0.01'",
    )
    g.add_argument("--duplicates", type=float, help="share of records sent twice (0.03)")
    g.add_argument("--late", type=float, help="share of records arriving up to 1 h late (0.05)")
    g.add_argument("--seed", type=int)
    s = parser.add_argument_group("scenarios")
    s.add_argument(
        "--only",
        help=f"comma-separated scenarios to run: {','.join(SCENARIOS)} (default: all)",
    )
    s.add_argument("--skip", help="comma-separated scenarios not to run")
    s.add_argument("--quick", action="store_true", help="small sizes (a couple of minutes)")
    s.add_argument("--drain-budget", type=float, help="max seconds for one drain (240)")
    s.add_argument("--naive-budget", type=float, help="max seconds for the naive app (60)")
    s.add_argument(
        "--check-sample",
        type=int,
        help="snapshots checked against the reference (0 = all, the default)",
    )
    s.add_argument("--latency-rate", type=float, help="offered events/s (2000)")
    s.add_argument(
        "--latency-high-rate", type=float, help="offered events/s, high-rate run (10000)"
    )
    s.add_argument("--latency-seconds", type=float, help="(20)")
    s.add_argument(
        "--latency-warmup",
        type=float,
        help="seconds offered before the measured ones, reported apart (5)",
    )
    s.add_argument("--api-rate", type=float, help="offered requests/s (1000)")
    s.add_argument("--api-high-rate", type=float, help="offered requests/s of 5b (5000)")
    s.add_argument("--api-seconds", type=float, help="(15)")
    s.add_argument("--recovery-contacts", type=int, help="contacts a restarted worker holds (1M)")
    s.add_argument(
        "--webhook-batches", type=int, help="SendGrid batches of 1,000 posted by scenario 8 (200)"
    )
    s.add_argument("--profile", action="store_true", help="py-spy the pipeline worker's drain")
    o = parser.add_argument_group("output")
    o.add_argument("--out-dir", type=Path, default=ROOT / "bench-results")
    o.add_argument("--json", type=Path, help="write the figures here (default out-dir/<ts>.json)")
    o.add_argument("--benchmarks-md", type=Path, default=ROOT / "BENCHMARKS.md")
    o.add_argument("--no-record", action="store_true", help="do not append to BENCHMARKS.md")
    o.add_argument("--notes", default="", help="text appended under the run in BENCHMARKS.md")
    o.add_argument("--keep", action="store_true", help="keep topics and Redis keys afterwards")
    o.add_argument("--workdir", type=Path, help="worker data and logs (default: a temp dir)")


def _names(text: str | None) -> set[str]:
    names = {n.strip() for n in (text or "").split(",") if n.strip()}
    unknown = names - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"bench: unknown scenario(s) {sorted(unknown)}; known: {SCENARIOS}")
    return names


def config_from(args: argparse.Namespace) -> BenchConfig:
    from bench.backlog import parse_mix
    from bench.harness import BenchConfig

    cfg = BenchConfig()
    if args.mix is not None:
        try:
            args.mix = parse_mix(args.mix)
        except ValueError as exc:
            raise SystemExit(f"bench: {exc}") from None
    if args.quick:
        cfg.preset = "quick"
        for key, value in QUICK.items():
            setattr(cfg, key, value)
    mapping = {
        "events": "events",
        "contacts": "contacts",
        "orgs": "orgs",
        "messages": "messages",
        "mix": "mix",
        "duplicates": "duplicate_rate",
        "late": "late_rate",
        "seed": "seed",
        "drain_budget": "drain_budget",
        "naive_budget": "naive_budget",
        "check_sample": "check_sample",
        "latency_rate": "latency_rate",
        "latency_high_rate": "latency_high_rate",
        "latency_seconds": "latency_seconds",
        "latency_warmup": "latency_warmup_seconds",
        "api_rate": "api_rate",
        "api_high_rate": "api_high_rate",
        "api_seconds": "api_seconds",
        "recovery_contacts": "recovery_contacts",
        "webhook_batches": "webhook_batches",
    }
    for arg, attr in mapping.items():
        value = getattr(args, arg)
        if value is not None:
            setattr(cfg, attr, value)
            if cfg.preset in ("default", "quick") and arg not in ("seed",):
                cfg.preset = f"{cfg.preset}+custom"
    only = _names(args.only) or set(SCENARIOS)
    cfg.scenarios = tuple(n for n in SCENARIOS if n in only - _names(args.skip))
    cfg.profile = args.profile
    cfg.keep = args.keep
    return cfg


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the benchmark; 0 when every selected scenario ran and the exactness check passed."""
    import orjson

    from bench.harness import run_bench
    from bench.report import print_table, record

    cfg = config_from(args)
    cfg.partitions = settings.partitions
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path: Path = args.json or args.out_dir / f"{stamp}.json"
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[bench {time.monotonic() - started:6.1f}s] {message}", flush=True)

    with tempfile.TemporaryDirectory(prefix="em-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        log(
            f"scenarios {', '.join(cfg.scenarios)}; Kafka {settings.kafka_bootstrap}, "
            f"Redis {settings.redis_url}; logs in {workdir}"
        )
        doc = asyncio.run(
            run_bench(cfg, settings.kafka_bootstrap, settings.redis_url, workdir, log)
        )
        if args.profile:  # keep the raw profile next to the JSON
            profile = workdir / "pipeline.pyspy.txt"
            if profile.exists():
                json_path.parent.mkdir(parents=True, exist_ok=True)
                target = json_path.with_suffix(".pyspy.txt")
                target.write_bytes(profile.read_bytes())
                pipe = doc["scenarios"].get("pipeline", {})
                if "profile" in pipe:
                    pipe["profile"]["file"] = str(target)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    print_table(doc)
    print(f"figures written to {json_path}")
    if not args.no_record:
        try:
            shown = json_path.resolve().relative_to(ROOT)
        except ValueError:
            shown = json_path
        record(doc, args.benchmarks_md, shown, args.notes)
        print(f"run recorded in {args.benchmarks_md}")
    return exit_code(doc)


def exit_code(doc: dict[str, object]) -> int:
    scenarios = doc["scenarios"]
    assert isinstance(scenarios, dict)
    pipeline = scenarios.get("pipeline", {})
    exact = pipeline.get("exact") if isinstance(pipeline, dict) else None
    if isinstance(exact, dict) and not exact.get("passed"):
        return 1
    failed = [
        n
        for n, v in scenarios.items()
        if isinstance(v, dict) and str(v.get("status", "")).startswith("failed")
    ]
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    return run(args, settings)
