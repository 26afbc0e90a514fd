"""A Kafka broker of a test's own (KRaft, single node, loopback), that the test may stop and start.

The same Apache Kafka jars `scripts/services.sh` runs (resolved from Maven Central into
`.cache/`), the same configuration template, its own ports and data directory: stopping it
never disturbs the broker the rest of the suite uses, and starting it again keeps its data, as
a restarted broker would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.integration.harness import ROOT, free_port


def _kafka_libs() -> Path:
    pom = (ROOT / "scripts" / "kafka" / "pom.xml").read_text()
    version = pom.split("<kafka.version>", 1)[1].split("</kafka.version>", 1)[0]
    libs = ROOT / ".cache" / f"kafka-{version}" / "libs"
    if not (libs / f"kafka_2.13-{version}.jar").exists():
        subprocess.run([str(ROOT / "scripts" / "services.sh"), "resolve"], check=True)
    return libs


class KafkaServer:
    def __init__(self, workdir: Path, heap: str = "384m") -> None:
        if shutil.which("java") is None:
            raise AssertionError("java is not installed (the local Kafka runs on the JVM)")
        self.libs = _kafka_libs()
        self.port = free_port()
        self.controller_port = free_port()
        self.workdir = workdir
        self.heap = heap
        self.proc: subprocess.Popen[bytes] | None = None
        # Set by KafkaCluster for a node of a cluster; a lone broker is node 1 of 1.
        self.node_id = 1
        self.voters = ""
        self.replication = 1
        self.cluster_id = ""

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self) -> list[str]:
        return [
            "java",
            "-Xms128m",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.workdir / 'logs'}",
            f"-Dlog4j2.configurationFile={ROOT / 'scripts' / 'kafka' / 'log4j2.xml'}",
            "-cp",
            f"{self.libs}/*",
        ]

    def _configure(self) -> Path:
        properties = self.workdir / "server.properties"
        if properties.exists():
            return properties
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        text = (
            (ROOT / "scripts" / "kafka" / "server.properties.in")
            .read_text()
            .replace("@KAFKA_PORT@", str(self.port))
            .replace("@CONTROLLER_PORT@", str(self.controller_port))
            .replace("@DATA_DIR@", str(self.workdir / "data"))
            .replace("@NODE_ID@", str(self.node_id))
            .replace("@VOTERS@", self.voters or f"1@127.0.0.1:{self.controller_port}")
            .replace("@REPLICATION@", str(self.replication))
            .replace("@MIN_ISR@", str(min(self.replication, 2)))
        )
        properties.write_text(text)
        cluster = (
            self.cluster_id
            or subprocess.run(
                [*self._java(), "kafka.tools.StorageTool", "random-uuid"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        fmt = ["kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(properties)]
        subprocess.run([*self._java(), *fmt], capture_output=True, check=True)
        return properties

    def launch(self) -> subprocess.Popen[bytes]:
        properties = self._configure()
        log = (self.workdir / "logs" / "stdout.log").open("ab")
        self.proc = subprocess.Popen(
            [*self._java(), "kafka.Kafka", str(properties)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self.proc

    def wait_ready(self, timeout: float = 120) -> None:
        assert self.proc is not None
        ready = subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "python"),
                str(ROOT / "scripts" / "wait_ready.py"),
                "kafka",
                self.bootstrap,
                "--timeout",
                str(timeout),
                "--pid",
                str(self.proc.pid),
            ],
            check=False,
        )
        if ready.returncode != 0:
            self.stop()
            raise AssertionError(f"the test's own Kafka did not start; logs in {self.workdir}")

    def start(self, timeout: float = 90) -> None:
        self.launch()
        self.wait_ready(timeout)

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (a controlled shutdown), or SIGKILL with `kill`; waits until it is gone."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        time.sleep(0.5)  # the ports are free again


class KafkaCluster:
    """Three (or `size`) KRaft nodes, each broker and controller, on loopback: a real quorum
    with replication factor 3 and `min.insync.replicas=2`, any node of which a test may kill."""

    def __init__(self, workdir: Path, size: int = 3, heap: str = "384m") -> None:
        self.nodes = [KafkaServer(workdir / f"node-{i + 1}", heap) for i in range(size)]
        voters = ",".join(
            f"{i + 1}@127.0.0.1:{node.controller_port}" for i, node in enumerate(self.nodes)
        )
        for i, node in enumerate(self.nodes):
            node.node_id = i + 1
            node.voters = voters
            node.replication = size

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def start(self) -> None:
        cluster = subprocess.run(
            [*self.nodes[0]._java(), "kafka.tools.StorageTool", "random-uuid"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for node in self.nodes:
            node.cluster_id = cluster
        # A node waits for a quorum before it answers: start them all, then wait for each.
        procs = [node.launch() for node in self.nodes]
        for node, _proc in zip(self.nodes, procs, strict=True):
            node.wait_ready()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop(kill=True)
