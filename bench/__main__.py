"""`python -m bench`: the benchmark harness without the project CLI (same options)."""

import sys

from bench.cli import main

sys.exit(main())
