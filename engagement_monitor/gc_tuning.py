"""The cyclic garbage collector's settings for the worker and its child processes.

The worker keeps tens of thousands of decoded contacts alive between checkpoints, and each
checkpoint allocates a few objects per contact; its snapshot processes build a snapshot, a
history and org indexes per contact (dicts and lists by the dozen), and its ingest processes a
`ConsumerRecord` and the parsed JSON per input record. With CPython's default thresholds (700,
10, 10) the collector runs thousands of times a second: ~13 % of the worker's CPU (bench: a
200,000-event backlog) and, before its children were tuned too, ~12 % of a snapshot process's
samples (py-spy, session 18). Nothing these processes keep forms reference cycles, so young
collections can be rarer; what start-up created (modules, Faust, pydantic's models, the app)
is frozen out of every collection.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Call once start-up has imported and built what the process keeps for its lifetime."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
