"""The peers `make bench` compares the pipeline with (issue 18), built on first use.

* quixstreams runs in a virtualenv of its own (`.venv-quix`): quixstreams 3.28.1 pins
  pydantic below the version this project uses, so the two cannot share one environment.
* The Kafka Streams peer (`bench/kstreams/`) is a Maven project built against the broker's
  version of `kafka-streams`, from Maven Central only.

Both are cached (`.venv-quix/.installed`, `bench/kstreams/target/`), so a second run starts
at once; a changed pin rebuilds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUIX_VERSION = "3.28.1"
QUIX_REQUIREMENTS = (f"quixstreams=={QUIX_VERSION}", "redis>=5.0", "orjson>=3.9")
QUIX_VENV = ROOT / ".venv-quix"
KSTREAMS_DIR = ROOT / "bench" / "kstreams"
KSTREAMS_JAR = KSTREAMS_DIR / "target" / "engagement-peer.jar"
KSTREAMS_LIBS = KSTREAMS_DIR / "target" / "lib"


class PeerUnavailable(RuntimeError):
    """The peer could not be built here; the message says why."""


def quix_python() -> Path:
    """The peer virtualenv's interpreter, created and filled on first use."""
    python = QUIX_VENV / "bin" / "python"
    stamp = QUIX_VENV / ".installed"
    wanted = "\n".join(QUIX_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *QUIX_REQUIREMENTS],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise PeerUnavailable(f"pip install {' '.join(QUIX_REQUIREMENTS)}: {result.stderr[-500:]}")
    stamp.write_text(wanted)
    return python


def kstreams_classpath() -> str:
    """The Kafka Streams peer's classpath, built with Maven on first use."""
    pom = KSTREAMS_DIR / "pom.xml"
    sources = [pom, *sorted((KSTREAMS_DIR / "src").rglob("*.java"))]
    newest = max(p.stat().st_mtime for p in sources)
    if not (KSTREAMS_JAR.exists() and KSTREAMS_JAR.stat().st_mtime >= newest):
        mvn = shutil.which("mvn")
        if mvn is None:
            raise PeerUnavailable("mvn is not installed (apt-get install maven)")
        result = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom), "package", "-DskipTests"],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise PeerUnavailable(f"mvn package failed: {(result.stdout + result.stderr)[-800:]}")
    jars = [str(KSTREAMS_JAR), *(str(p) for p in sorted(KSTREAMS_LIBS.glob("*.jar")))]
    return ":".join(jars)
