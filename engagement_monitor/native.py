"""The worker's hot modules compiled to C with mypyc, and the guard against stale builds.

The counting core, the processor and the table value's codec are plain, fully typed Python
(mypy --strict), which mypyc compiles to C extension modules that do the same work in about
three quarters of the time on the processor's stream (BENCHMARKS.md, session 10). `make
install` builds them in place (`python -m engagement_monitor.native build`): each module gets
a `<module>.cpython-311-*.so` beside its `.py`, which Python imports in its place, and all
share one library, `engagement_monitor/native_core__mypyc.*.so`.

A compiled module that no longer matches its source would run old code silently. So the build
records the SHA-256 of every source it compiled (`native_build.json`), and the packages
holding compiled modules (`counting`, `agents`, `streams`) check them before any of their
modules is imported (`verify`, called from their `__init__`): a stale or unrecorded build
stops the import with a message naming the module and the fix (`make native` to rebuild,
`make clean-native` to run interpreted).
Without any compiled module everything runs interpreted, as before; the tests pass both ways.

Why these modules: they are what a written contact and an applied event cost in the agent's
event loop (the profile in BENCHMARKS.md). Modules that define pydantic models, Faust or
asyncio code stay interpreted: mypyc gains little there and they use dynamic features.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "engagement_monitor" / "native_build.json"
GROUP = "engagement_monitor.native_core"  # the shared library's module

# Source paths, relative to the repository root: one list, for the build and the guard.
NATIVE_MODULES: tuple[str, ...] = (
    "counting/apply.py",
    "counting/buckets.py",
    "counting/clicks.py",
    "counting/codec.py",
    "counting/contrib.py",
    "counting/deletion.py",
    "counting/event_codec.py",
    "counting/events.py",
    "counting/expiry.py",
    "counting/ids.py",
    "counting/messages.py",
    "counting/outcome.py",
    "counting/profile.py",
    "counting/rates.py",
    "counting/reading.py",
    "counting/send_times.py",
    "counting/snapshot.py",
    "counting/state.py",
    "counting/subscriptions.py",
    "counting/tiering.py",
    "counting/timeutil.py",
    "agents/contact_cache.py",
    "agents/history_view.py",
    "agents/org_index.py",
    "agents/processor.py",
    "agents/redis_args.py",
    "agents/stored.py",
    "streams/envelope.py",
    "streams/framing.py",
    "streams/partitioning.py",
    "streams/records.py",
)


class StaleNativeBuild(ImportError):
    """A compiled module does not match its source (or was not built by `build`)."""


@dataclass(frozen=True, slots=True)
class NativeStatus:
    compiled: tuple[str, ...]  # source paths with a compiled module beside them

    @property
    def describe(self) -> str:
        if not self.compiled:
            return "interpreted (no compiled modules: `make native` builds them)"
        return f"compiled with mypyc ({len(self.compiled)} of {len(NATIVE_MODULES)} modules)"


def _compiled_path(source: Path) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = source.with_name(source.stem + suffix)
        if candidate.exists():
            return candidate
    return None


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shared_libraries(root: Path) -> list[Path]:
    return sorted((root / "engagement_monitor").glob("native_core__mypyc.*"))


def status(root: Path = ROOT) -> NativeStatus:
    return NativeStatus(tuple(m for m in NATIVE_MODULES if _compiled_path(root / m) is not None))


def check(root: Path = ROOT, manifest: Path | None = None) -> NativeStatus:
    """Raise `StaleNativeBuild` unless every compiled module was built from its current
    source; the status otherwise."""
    found = status(root)
    if not found.compiled:
        return found
    manifest = manifest or root / MANIFEST.relative_to(ROOT)
    try:
        recorded = json.loads(manifest.read_text())["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        raise StaleNativeBuild(
            f"compiled modules ({', '.join(found.compiled[:3])}...) without a build record "
            f"({manifest.name}): run `make native` to rebuild them or `make clean-native` to "
            "run interpreted"
        ) from None
    for module in found.compiled:
        if recorded.get(module) != _digest(root / module):
            raise StaleNativeBuild(
                f"the compiled {module} is older than its source: run `make native` to "
                "rebuild it or `make clean-native` to run interpreted"
            )
    return found


@cache
def verify() -> NativeStatus:
    """`check`, once a process (the packages holding compiled modules call it on import)."""
    return check()


def build(root: Path = ROOT) -> bool:
    """Compile `NATIVE_MODULES` in place unless the recorded build matches the sources; True
    if it compiled."""
    sources = {m: _digest(root / m) for m in NATIVE_MODULES}
    manifest = root / MANIFEST.relative_to(ROOT)
    try:
        recorded = json.loads(manifest.read_text())
    except (OSError, ValueError):
        recorded = {}
    if (
        recorded.get("sources") == sources
        and recorded.get("python") == sys.version
        and len(status(root).compiled) == len(NATIVE_MODULES)
        and _shared_libraries(root)
    ):
        return False
    manifest.unlink(missing_ok=True)  # no record while the build is half done
    script = (
        "from setuptools import setup\n"
        "from mypyc.build import mypycify\n"
        f"setup(name='engagement-monitor-native', py_modules=[], packages=[],\n"
        f"      ext_modules=mypycify({list(NATIVE_MODULES)!r}, opt_level='3',\n"
        f"                           group_name={GROUP!r}),\n"
        "      script_args=['build_ext', '--inplace'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        clean(root)
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise RuntimeError(f"mypyc could not compile the native modules:\n{tail}")
    manifest.write_text(
        json.dumps({"python": sys.version, "sources": sources}, indent=1, sort_keys=True)
    )
    return True


def clean(root: Path = ROOT) -> int:
    """Remove every compiled module, the shared library and the record: run interpreted."""
    removed = 0
    for module in NATIVE_MODULES:
        compiled = _compiled_path(root / module)
        while compiled is not None:
            compiled.unlink()
            removed += 1
            compiled = _compiled_path(root / module)
    for library in _shared_libraries(root):
        library.unlink()
        removed += 1
    (root / MANIFEST.relative_to(ROOT)).unlink(missing_ok=True)
    return removed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "status"
    if command == "build":
        compiled = build()
        print(f"native modules: {'compiled' if compiled else 'up to date'}; {status().describe}")
    elif command == "clean":
        print(f"native modules: removed {clean()} file(s); running interpreted")
    elif command == "status":
        try:
            print(check().describe)
        except StaleNativeBuild as exc:
            print(f"stale: {exc}")
            return 1
    else:
        print("usage: python -m engagement_monitor.native [build|clean|status]")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
