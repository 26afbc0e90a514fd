"""The guard against compiled modules that no longer match their sources
(`engagement_monitor.native`), on a copy of the tree's layout in a temporary directory."""

from __future__ import annotations

import importlib.machinery
import json
from pathlib import Path

import pytest

from engagement_monitor import native

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def tree(tmp_path: Path) -> Path:
    for module in native.NATIVE_MODULES:
        source = tmp_path / module
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"# {module}\n")
    (tmp_path / "engagement_monitor").mkdir(exist_ok=True)
    return tmp_path


def compile_fake(root: Path, module: str) -> None:
    source = root / module
    source.with_name(source.stem + SUFFIX).write_bytes(b"\x7fELF")


def record(root: Path) -> None:
    sources = {m: native._digest(root / m) for m in native.NATIVE_MODULES}
    (root / "engagement_monitor" / "native_build.json").write_text(
        json.dumps({"python": "x", "sources": sources})
    )


def test_without_compiled_modules_everything_runs_interpreted(tmp_path: Path) -> None:
    status = native.check(tree(tmp_path))
    assert status.compiled == ()
    assert status.describe.startswith("interpreted")


def test_compiled_modules_matching_their_recorded_sources_pass(tmp_path: Path) -> None:
    root = tree(tmp_path)
    for module in native.NATIVE_MODULES:
        compile_fake(root, module)
    record(root)
    assert native.check(root).compiled == native.NATIVE_MODULES


def test_a_source_changed_since_the_build_stops_the_import_naming_it(tmp_path: Path) -> None:
    root = tree(tmp_path)
    compile_fake(root, "counting/apply.py")
    record(root)
    (root / "counting" / "apply.py").write_text("# changed\n")
    with pytest.raises(native.StaleNativeBuild, match=r"counting/apply\.py.*make native"):
        native.check(root)


def test_compiled_modules_without_a_build_record_stop_the_import(tmp_path: Path) -> None:
    root = tree(tmp_path)
    compile_fake(root, "agents/processor.py")
    with pytest.raises(native.StaleNativeBuild, match="without a build record"):
        native.check(root)


def test_clean_removes_every_compiled_module_the_library_and_the_record(tmp_path: Path) -> None:
    root = tree(tmp_path)
    for module in native.NATIVE_MODULES[:3]:
        compile_fake(root, module)
    (root / "engagement_monitor" / f"native_core__mypyc{SUFFIX}").write_bytes(b"")
    record(root)
    assert native.clean(root) == 4
    assert native.check(root).compiled == ()
    assert not (root / "engagement_monitor" / "native_build.json").exists()


def test_this_tree_is_either_interpreted_or_compiled_from_its_current_sources() -> None:
    """What `make install` left: if it compiled, the packages import the compiled modules,
    and each matches its source (else importing `counting` would already have failed)."""
    import counting.apply

    status = native.check()
    compiled = counting.apply.__file__ is not None and counting.apply.__file__.endswith(SUFFIX)
    assert compiled == ("counting/apply.py" in status.compiled)
