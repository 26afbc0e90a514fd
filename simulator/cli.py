"""``engagement-monitor simulate``: produce a realistic stream, or describe it (``--dry-run``).

Wired into ``engagement_monitor/cli.py`` as a subcommand; ``add_arguments`` declares the options
and ``run`` does the work with the process settings (bootstrap servers, topic prefix, the
worker's window and record size limit, so that "old" and "oversize" records are old and oversize
for the worker that will read them).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from simulator.config import SimConfig
from simulator.personas import PERSONAS
from simulator.stream import generate
from simulator.summary import render, summarize
from simulator.world import build_contact, build_orgs, org_timezones

if TYPE_CHECKING:
    from engagement_monitor.settings import Settings
    from simulator.produce import SimStats

# Counting the records first (one extra generation pass) gives the progress bar a true total;
# above this estimate the pass costs too much and the bar runs without a total.
_COUNT_FIRST_UP_TO = 2_000_000


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 0.9:
        raise argparse.ArgumentTypeError(f"{text} is not a share in [0, 0.9)")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 timestamp") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``simulate``; defaults give a stream of about 27,000 records."""
    parser.add_argument("--orgs", type=_positive_int, default=3, help="organizations (3)")
    parser.add_argument(
        "--contacts", type=_positive_int, default=200, help="contacts per org (200)"
    )
    parser.add_argument(
        "--messages",
        type=_non_negative,
        default=20.0,
        help="mean messages per contact over the span (20)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed; same seed, same stream")
    parser.add_argument(
        "--rate",
        type=_non_negative,
        default=0.0,
        help="target records per second; 0 = as fast as possible (0)",
    )
    parser.add_argument(
        "--malformed-share",
        type=_share,
        default=0.01,
        help="share of records the worker must dead-letter (0.01)",
    )
    parser.add_argument(
        "--duplicate-share",
        type=_share,
        default=0.02,
        help="share of records that repeat an earlier one (0.02)",
    )
    parser.add_argument(
        "--days", type=_positive_int, default=90, help="span of event time, up to now (90)"
    )
    parser.add_argument(
        "--now",
        type=_timestamp,
        default=None,
        help="the simulated present, RFC 3339 (default: the current time)",
    )
    parser.add_argument(
        "--via",
        choices=("kafka", "webhooks"),
        default="kafka",
        help=(
            "kafka: every record to its topic; webhooks: what SendGrid, Twilio and WhatsApp "
            "would report goes signed through the API's webhook endpoints (kafka)"
        ),
    )
    parser.add_argument(
        "--api-url",
        default=None,
        help="the API for --via webhooks (default http://EM_API_HOST:EM_API_PORT)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="describe what would be produced, without connecting to Kafka",
    )


def config_from_args(args: argparse.Namespace, settings: Settings | None = None) -> SimConfig:
    """The run's ``SimConfig``; worker limits come from ``settings`` when given."""
    config = SimConfig(
        orgs=args.orgs,
        contacts_per_org=args.contacts,
        messages_per_contact=args.messages,
        seed=args.seed,
        days=args.days,
        malformed_share=args.malformed_share,
        duplicate_share=args.duplicate_share,
    )
    if args.now is not None:
        config = replace(config, now=args.now)
    if settings is not None:
        config = replace(
            config, window_days=settings.window_days, max_record_bytes=settings.max_record_bytes
        )
    return config


def estimate_records(config: SimConfig) -> int:
    """Rough size of a run (about two records per message plus a few per contact)."""
    contacts = config.orgs * config.contacts_per_org
    good = contacts * (2.0 * config.messages_per_contact + 4.0)
    return int(good / max(0.1, 1.0 - config.malformed_share - config.duplicate_share))


def _examples(config: SimConfig) -> list[str]:
    """One contact per persona of the first org, to look at once the worker has run."""
    org = build_orgs(config)[0]
    lines = []
    for index in range(min(len(PERSONAS), config.contacts_per_org)):
        contact, _ = build_contact(org, index, config)
        lines.append(f"    {contact.persona.name:<11} {org.org_id} {contact.contact_id}")
    return lines


def _zones_env(config: SimConfig) -> str:
    zones = ", ".join(f'"{org}": "{zone}"' for org, zone in org_timezones(config.orgs).items())
    return f"EM_ORG_TIMEZONES='{{{zones}}}'"


def _produce(
    config: SimConfig,
    settings: Settings,
    rate: float | None,
    progress: bool,
    *,
    via: str = "kafka",
    api_url: str | None = None,
) -> SimStats:
    from simulator.produce import produce

    # aiokafka warns once per topic it has to wait for (auto-created topics); on a run against
    # a fresh broker that is noise around the progress bar, not news.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    if via == "webhooks":
        return _via_webhooks(config, settings, rate, progress, api_url)
    total: int | None = None
    if progress and estimate_records(config) <= _COUNT_FIRST_UP_TO:
        total = sum(1 for _ in generate(config))
    return asyncio.run(
        produce(
            generate(config),
            settings.kafka_bootstrap,
            settings.topic_prefix,
            rate,
            progress,
            total=total,
        )
    )


def _via_webhooks(
    config: SimConfig,
    settings: Settings,
    rate: float | None,
    progress: bool,
    api_url: str | None,
) -> SimStats:
    """The providers' share of the stream through the API's webhooks, the rest to Kafka."""
    from simulator.produce import produce
    from simulator.webhooks import ProviderKeys, install_secrets, post_all, route

    url = api_url or f"http://{settings.api_host}:{settings.api_port}"
    routed = route(generate(config))
    keys = ProviderKeys.fresh()
    install_secrets(settings.webhook_secrets_file, org_timezones(config.orgs), keys)
    print(
        f"  provider secrets for {config.orgs} org(s) written to {settings.webhook_secrets_file}; "
        f"posting to {url}",
        file=sys.stderr,
    )
    stats = asyncio.run(
        produce(
            routed.kafka,
            settings.kafka_bootstrap,
            settings.topic_prefix,
            rate,
            progress,
            total=len(routed.kafka),
        )
    )
    hooks = asyncio.run(post_all(routed, url, keys))
    print(hooks.render())
    # What the API published is in Kafka too: the worker has that much more to read.
    stats.sent += hooks.published
    stats.by_kind["through provider webhooks"] += hooks.published
    if hooks.refused:
        stats.failed += sum(hooks.refused.values())
        stats.errors["webhook refused"] += sum(hooks.refused.values())
    return stats


def demo_records(settings: Settings, args: Any = None) -> tuple[list[str], int]:
    """Produce the stream for ``make demo``; returns the org ids and the records acknowledged.

    ``args`` may carry any of the ``simulate`` options (same attribute names); the others keep
    their defaults. Raises when Kafka cannot be reached or records fail, so the demo stops
    with the reason instead of waiting for records that never came.
    """
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    options = parser.parse_args([])
    for name in vars(options):
        value = getattr(args, name, None)
        if value is not None:
            setattr(options, name, value)
    config = config_from_args(options, settings)
    stats = _produce(
        config,
        settings,
        options.rate or None,
        not options.no_progress,
        via=options.via,
        api_url=options.api_url,
    )
    print(stats.render())
    if stats.failed:
        raise RuntimeError(f"{stats.failed} record(s) could not be produced: {dict(stats.errors)}")
    return list(org_timezones(config.orgs)), stats.sent


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Produce (or with ``--dry-run`` describe) the stream; 0 when every record was acked."""
    try:
        config = config_from_args(args, settings)
    except ValueError as exc:
        print(f"engagement-monitor simulate: {exc}", file=sys.stderr)
        return 2
    unknown = {"sms", "email", "whatsapp"} - set(settings.channels)
    if unknown:
        print(
            f"engagement-monitor simulate: warning: EM_CHANNELS lacks {', '.join(sorted(unknown))};"
            " the worker will dead-letter those records as unknown_channel",
            file=sys.stderr,
        )
    if args.dry_run:
        print(render(summarize(generate(config), config), config))
        print(
            f"  would produce to {settings.kafka_bootstrap}, topics {settings.topic_prefix}<topic>"
        )
        return 0
    print(
        f"simulating {config.orgs} org(s) x {config.contacts_per_org} contacts, seed "
        f"{config.seed}, now {config.now.isoformat(timespec='seconds')} -> "
        f"{settings.kafka_bootstrap} ({settings.topic_prefix}<topic>)",
        file=sys.stderr,
    )
    try:
        stats = _produce(
            config,
            settings,
            args.rate or None,
            not args.no_progress,
            via=args.via,
            api_url=args.api_url,
        )
    except KeyboardInterrupt:
        print("engagement-monitor simulate: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a broker that cannot be reached: say so plainly, no traceback
        print(
            f"engagement-monitor simulate: cannot produce to {settings.kafka_bootstrap}: {exc!r}",
            file=sys.stderr,
        )
        return 1
    print(stats.render())
    print(f"  org time zones (set on the worker for best send times): {_zones_env(config)}")
    print("  example contacts, one per persona:")
    print("\n".join(_examples(config)))
    return 0 if stats.failed == 0 else 1
