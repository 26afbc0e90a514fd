"""`engagement-monitor` command line: one entry point for every process of the product."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from engagement_monitor.settings import Settings, SettingsError, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _worker(_args: argparse.Namespace, settings: Settings) -> int:
    from engagement_monitor.worker import run_worker

    return run_worker(settings)


def _resnapshot(_args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from engagement_monitor.worker import request_resnapshot

    print("asking the workers to rebuild every snapshot from their tables ...")
    code = asyncio.run(request_resnapshot(settings))
    print("done: every partition rebuilt" if code == 0 else "timed out: is a worker running?")
    return code


def _api(_args: argparse.Namespace, settings: Settings) -> int:
    from read_api import run_api

    return run_api(settings)


def _token_create(args: argparse.Namespace, settings: Settings) -> int:
    from read_api import create_token

    try:
        token = create_token(settings, args.org, args.role, args.name)
    except ValueError as exc:  # also covers an unreadable tokens file (TokenFileError)
        print(f"engagement-monitor: {exc}", file=sys.stderr)
        return 2
    print(token)
    print(
        f"(shown once; only its SHA-256 is stored in {settings.api_tokens_file})", file=sys.stderr
    )
    return 0


def _token_list(args: argparse.Namespace, settings: Settings) -> int:
    from read_api import list_tokens

    try:
        records = list_tokens(settings, args.org)
    except ValueError as exc:
        print(f"engagement-monitor: {exc}", file=sys.stderr)
        return 2
    for r in records:  # tab-separated: org, role, name, the digest's first 12 hex digits
        print(f"{r.org_id}\t{r.role}\t{r.name}\t{r.sha256[:12]}")
    return 0


def _token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from read_api import revoke_tokens

    try:
        removed = revoke_tokens(settings, args.org, name=args.name, sha256_prefix=args.sha256)
    except ValueError as exc:
        print(f"engagement-monitor: {exc}", file=sys.stderr)
        return 2
    if not removed:
        print(f"engagement-monitor: no token of org {args.org!r} matches", file=sys.stderr)
        return 1
    for r in removed:
        print(f"revoked {r.org_id}\t{r.role}\t{r.name}\t{r.sha256[:12]}")
    return 0


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from simulator.cli import run

    return run(args, settings)


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from bench.cli import run

    return run(args, settings)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from engagement_monitor.demo import run_demo

    return run_demo(settings, args)


def _config(_args: argparse.Namespace, settings: Settings) -> int:
    """Print the effective configuration, so an operator can see what the process will use."""
    for name, value in settings.model_dump(mode="json").items():
        print(f"EM_{name.upper()}={value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engagement-monitor",
        description="Rolling 90-day contact engagement from the event stream (see README.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, tuple[str, Handler]] = {
        "worker": ("run the stream processor (Faust worker)", _worker),
        "resnapshot": ("rebuild Redis snapshots from the tables", _resnapshot),
        "api": ("serve the read API and the monitor page", _api),
        "simulate": ("produce a realistic simulated event stream", _simulate),
        "bench": ("run the benchmarks (see BENCHMARKS.md)", _bench),
        "demo": ("run worker and API, replay a simulated stream, report (make demo)", _demo),
        "config": ("print the effective configuration and exit", _config),
    }
    for name, (help_text, handler) in commands.items():
        command = sub.add_parser(name, help=help_text)
        command.set_defaults(handler=handler)
        if name in ("simulate", "demo"):
            from simulator.cli import add_arguments as simulate_arguments

            simulate_arguments(command)
        elif name == "bench":
            from bench.cli import add_arguments as bench_arguments

            bench_arguments(command)
    token = sub.add_parser("token", help="manage API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_sub.add_parser("create", help="create a token (printed once, stored hashed)")
    create.add_argument("--org", required=True)
    create.add_argument("--role", required=True, choices=["agent", "operator", "admin"])
    create.add_argument("--name", default="")
    create.set_defaults(handler=_token_create)
    listing = token_sub.add_parser("list", help="list stored tokens (digests only)")
    listing.add_argument("--org", default=None, help="only this org's tokens")
    listing.set_defaults(handler=_token_list)
    revoke = token_sub.add_parser(
        "revoke",
        help="revoke tokens of an org by name or digest prefix (the API refuses them at once)",
    )
    revoke.add_argument("--org", required=True)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--name", default=None)
    which.add_argument(
        "--sha256", default=None, help="at least 8 hex digits, as `token list` shows"
    )
    revoke.set_defaults(handler=_token_revoke)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"engagement-monitor: {exc}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    return handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
