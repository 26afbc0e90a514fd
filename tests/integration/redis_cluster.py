"""A three-master Redis Cluster of a test's own on loopback, whose masters a test may restart.

The nodes run with the options `scripts/services.sh` gives them under EM_LOCAL_REDIS_CLUSTER=true
(append-only file fsynced every second, no RDB, node timeout 2 s), each with its own directory, so
a restarted master finds its nodes.conf (its id and slots) and its AOF and comes back with its data.
The nodes run in the foreground as children of the test (not daemonized), so the helper can wait
for a node to exit and kill it outright; an interrupted test run takes them down with it.

    cluster = LocalRedisCluster(tmp_path / "redis-cluster", free_ports(3))
    cluster.start()       # starts the nodes, creates the cluster the first time, waits until ok
    cluster.url           # redis://127.0.0.1:<first port>/0, for RedisCluster.from_url
    cluster.restart(1)    # SHUTDOWN (AOF flushed) the second master, start it again, wait until ok
    cluster.kill(2)       # SIGKILL, a crash; restart(2) or start() brings it back
    cluster.stop()        # shuts every node down; the directories stay
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import NoReturn

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

CLUSTER_BUS_OFFSET = 10000  # Redis Cluster's node-to-node bus listens on the port + 10000
START_TIMEOUT = 30.0
SLOTS = 16384


class RedisClusterError(RuntimeError):
    """The cluster did not come up (or back); the message ends with the tail of each node's log."""


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_start() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(n: int = 3) -> tuple[int, ...]:
    """n ports that are free on 127.0.0.1 and whose cluster-bus ports (+10000) are free too.

    They are picked below the kernel's ephemeral range (bus ports included) when it leaves room, so
    no outgoing connection, the nodes' own included, is handed one of them before a node binds it.
    """
    high = _ephemeral_start() - CLUSTER_BUS_OFFSET
    low = 10000
    chosen: list[int] = []
    for _ in range(2000):
        if len(chosen) == n:
            break
        if high - low > 100:
            port = random.randrange(low, high)
        else:  # a kernel with an unusual range: ask it for any free port instead
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
        bus = port + CLUSTER_BUS_OFFSET
        taken = {p for c in chosen for p in (c, c + CLUSTER_BUS_OFFSET)}
        if bus > 65535 or port in taken or bus in taken:
            continue
        if _port_free(port) and _port_free(bus):
            chosen.append(port)
    if len(chosen) != n:
        raise RedisClusterError(
            f"found only {len(chosen)} of {n} free port pairs (port, port+10000)"
        )
    return tuple(chosen)


def _client(port: int) -> redis.Redis:
    # No retries: the helper polls by itself, and redis-py's default retries (with backoff) after
    # SHUTDOWN closes the connection would add seconds to every restart.
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_connect_timeout=0.5,
        socket_timeout=2,
        retry=Retry(NoBackoff(), 0),
    )


def _cluster_info(port: int) -> dict[str, str]:
    """CLUSTER INFO of one node (redis-py parses it into a dict); empty when it does not answer."""
    client = _client(port)
    try:
        info = client.cluster("INFO")
    except redis.RedisError:
        return {}
    finally:
        client.close()
    return {str(k): str(v) for k, v in info.items()} if isinstance(info, dict) else {}


def _cluster_view(port: int) -> frozenset[tuple[str, int, str]] | None:
    """What one node believes the cluster is: (id, port, slot ranges) of every node.

    None when the node does not answer, or sees a node that is not a connected, healthy master
    (failed, suspected, in handshake, without address, or a replica).
    """
    client = _client(port)
    try:
        nodes = client.cluster("NODES")  # {"ip:port": {"node_id", "flags", "connected", "slots"}}
    except redis.RedisError:
        return None
    finally:
        client.close()
    if not isinstance(nodes, dict):
        return None
    view: set[tuple[str, int, str]] = set()
    for address, node in nodes.items():
        flags = set(str(node["flags"]).split(",")) - {"myself"}
        if flags != {"master"} or not node["connected"]:
            return None
        slots = " ".join(sorted("-".join(map(str, r)) for r in node["slots"]))
        view.add((str(node["node_id"]), int(str(address).rsplit(":", 1)[1]), slots))
    return frozenset(view)


class LocalRedisCluster:
    """Three masters (no replicas) on 127.0.0.1, each in base_dir/node-<i> (i = 1, 2, 3)."""

    def __init__(self, base_dir: Path, ports: tuple[int, int, int]) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            raise RedisClusterError(
                "redis-server and redis-cli are needed (Debian/Ubuntu: apt-get install "
                "redis-server)"
            )
        if len(set(ports)) != 3:
            raise RedisClusterError(f"three different ports are needed, not {ports}")
        self.server_binary = server
        self.cli_binary = cli
        self.base_dir = base_dir
        self.ports = ports
        self.procs: list[subprocess.Popen[bytes] | None] = [None, None, None]

    @classmethod
    def on_free_ports(cls, base_dir: Path) -> LocalRedisCluster:
        a, b, c = free_ports(3)
        return cls(base_dir, (a, b, c))

    # ------------------------------------------------------------------ addresses
    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def node_dir(self, index: int) -> Path:
        """The directory of node `index` (0-based): its nodes.conf, AOF, log and pid file."""
        return self.base_dir / f"node-{index + 1}"

    def running(self, index: int) -> bool:
        proc = self.procs[index]
        return proc is not None and proc.poll() is None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start every node that is not running, create the cluster the first time, wait until ok.

        Raises RedisClusterError, with the tail of every node's log, when the cluster is not ok
        (every node in cluster_state:ok and agreeing on the nodes and slots) within 30 s.
        """
        deadline = time.monotonic() + START_TIMEOUT
        for index in range(3):
            if not self.running(index):
                self._spawn(index)
        for index in range(3):
            self._wait_ping(index, deadline)
        if all(_cluster_info(p).get("cluster_slots_assigned") == "0" for p in self.ports):
            self._create(deadline)
        self._wait_ok(deadline)

    def restart(self, index: int) -> None:
        """SHUTDOWN node `index` (0-based; its AOF is fsynced on the way), start it again in the
        same directory, and wait until the cluster is ok again (within 30 s of the new start).
        A node that is not running (say after kill()) is only started."""
        self._shutdown(index)
        deadline = time.monotonic() + START_TIMEOUT
        self._spawn(index)
        self._wait_ping(index, deadline)
        self._wait_ok(deadline)

    def kill(self, index: int) -> None:
        """SIGKILL node `index` (0-based): a crash; writes of the last second may be lost."""
        proc = self.procs[index]
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        self.procs[index] = None

    def stop(self) -> None:
        """Shut every node down (SHUTDOWN, then SIGTERM, then SIGKILL); the directories stay."""
        for index in range(3):
            self._shutdown(index)

    def __enter__(self) -> LocalRedisCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals
    def _spawn(self, index: int) -> None:
        directory = self.node_dir(index)
        directory.mkdir(parents=True, exist_ok=True)
        port = self.ports[index]
        # Same options as scripts/services.sh, in the foreground (the helper owns the process).
        options = {
            "--bind": "127.0.0.1",
            "--port": str(port),
            "--protected-mode": "yes",
            "--daemonize": "no",
            "--dir": str(directory),
            "--pidfile": str(directory / "redis.pid"),
            "--logfile": str(directory / "redis.log"),
            "--cluster-enabled": "yes",
            "--cluster-config-file": "nodes.conf",
            "--cluster-node-timeout": "2000",
            "--appendonly": "yes",
            "--appendfsync": "everysec",
            "--save": "",
        }
        self.procs[index] = subprocess.Popen(
            [self.server_binary, *(part for item in options.items() for part in item)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _shutdown(self, index: int) -> None:
        proc = self.procs[index]
        self.procs[index] = None
        if proc is None or proc.poll() is not None:
            return
        client = _client(self.ports[index])
        try:
            client.shutdown()  # flushes and fsyncs the AOF, saves nodes.conf; no RDB (save "")
        except redis.RedisError:
            proc.terminate()  # SIGTERM: the same graceful shutdown
        finally:
            client.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def _wait_ping(self, index: int, deadline: float) -> None:
        client = _client(self.ports[index])
        try:
            while time.monotonic() < deadline:
                proc = self.procs[index]
                if proc is None or proc.poll() is not None:
                    code = None if proc is None else proc.returncode
                    self._fail(f"node {index} (port {self.ports[index]}) exited (code {code})")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass  # not listening yet, or still loading its AOF (BusyLoadingError)
                time.sleep(0.05)
        finally:
            client.close()
        self._fail(f"node {index} (port {self.ports[index]}) did not answer PING")

    def _create(self, deadline: float) -> None:
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        replicas = ["--cluster-replicas", "0"]
        result = subprocess.run(
            [self.cli_binary, "--cluster", "create", *nodes, *replicas, "--cluster-yes"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=max(1.0, deadline - time.monotonic()),
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-10:])
            self._fail(f"redis-cli --cluster create failed ({result.returncode}):\n{tail}")

    def _wait_ok(self, deadline: float) -> None:
        """Every node in cluster_state:ok, with all slots, and the same view of nodes and slots."""
        problem = "not checked yet"
        while time.monotonic() < deadline:
            problem = self._problem()
            if not problem:
                return
            time.sleep(0.1)
        self._fail(f"the cluster is not ok after {START_TIMEOUT:.0f} s: {problem}")

    def _problem(self) -> str:
        views: set[frozenset[tuple[str, int, str]]] = set()
        for index, port in enumerate(self.ports):
            if not self.running(index):
                return f"node {index} is not running"
            info = _cluster_info(port)
            if info.get("cluster_state") != "ok":
                return f"node {index}: cluster_state {info.get('cluster_state', 'no answer')}"
            if info.get("cluster_slots_ok") != str(SLOTS):
                return f"node {index}: cluster_slots_ok {info.get('cluster_slots_ok')}"
            view = _cluster_view(port)
            if view is None:
                return f"node {index} sees a node failed, not connected or not a master"
            if {node_port for _, node_port, _ in view} != set(self.ports):
                return f"node {index} knows the nodes {sorted(p for _, p, _ in view)}"
            views.add(view)
        if len(views) != 1:
            return "the nodes disagree on the nodes or the slots"
        return ""

    def log_tails(self, lines: int = 20) -> str:
        out: list[str] = []
        for index in range(3):
            log = self.node_dir(index) / "redis.log"
            try:
                tail = log.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                tail = ["(no log)"]
            out.append(f"--- node {index} (port {self.ports[index]}): {log}")
            out.extend(tail)
        return "\n".join(out)

    def _fail(self, message: str) -> NoReturn:
        raise RedisClusterError(f"{message}\n{self.log_tails()}")
