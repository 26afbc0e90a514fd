"""Scenario 5's server: what `engagement-monitor api` runs, started without going through the CLI.

The CLI wiring of `api` may lag behind `read_api` (it did while the harness was written), and the
benchmark measures the API, not the argument parser: `read_api.server.run_api(settings)` is the
CLI's handler, so the process is the same.
"""

from __future__ import annotations

import sys

from engagement_monitor.settings import load_settings


def main() -> int:
    from read_api.server import run_api

    return run_api(load_settings())


if __name__ == "__main__":
    sys.exit(main())
