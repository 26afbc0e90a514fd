"""Crash points for the exactness tests: `EM_CRASH_AT=<step>` SIGKILLs the worker there, once.

Kill -9 at a chosen step of the ingest or of a checkpoint, then restart, is how the tests prove
that every step can be interrupted without losing or double-counting anything. In production
the setting is unset and a crash point costs one comparison.

The ingest may run in processes of its own (`streams.ingest_process`); a crash point reached
there kills the worker process too (`parent`), as a killed pod or machine would.
"""

from __future__ import annotations

import logging
import os
import signal

from engagement_monitor.settings import CRASH_POINTS

log = logging.getLogger("engagement_monitor.crash")


class CrashPoint:
    def __init__(self, at: str | None, *, parent: int | None = None) -> None:
        if at is not None and at not in CRASH_POINTS:
            raise ValueError(f"unknown crash point {at!r}")
        self.at = at
        self.parent = parent

    def __call__(self, point: str) -> None:
        if point == self.at:
            log.warning("EM_CRASH_AT=%s: killing this worker now (SIGKILL)", point)
            logging.shutdown()
            if self.parent is not None:
                os.kill(self.parent, signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
