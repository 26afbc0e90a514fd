"""The bench's CPU clock: a process tree's user + system time, read from /proc."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.common import tree_cpu_seconds

BURN = "import time\nend = time.process_time() + 1.0\nwhile time.process_time() < end: pass\n"


def test_a_busy_grandchild_counts_and_an_idle_parent_does_not() -> None:
    # parent (sleeping) -> child that spins for a CPU-second, then lingers
    code = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', {BURN + 'time.sleep(30)'!r}])\n"
        "time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        seen = 0.0
        while time.monotonic() < deadline:
            seen = tree_cpu_seconds(parent.pid)
            if seen >= 1.0:
                break
            time.sleep(0.1)
        assert seen >= 1.0, f"only {seen:.2f} CPU-s seen for a tree that burnt one"
        assert seen < 3.0  # the sleeping parent adds little (its start-up only)
    finally:
        parent.kill()
        parent.wait()


def test_a_gone_process_counts_nothing() -> None:
    done = subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert done.returncode == 0
    assert tree_cpu_seconds(2**22 + 12345) == 0.0  # no such pid
