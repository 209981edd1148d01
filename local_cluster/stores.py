"""The data stores of ``make run-ha`` (API.md 1.1): a PostgreSQL primary and streaming replica,
and a three-node RabbitMQ cluster, all of the project's own (own ports, node names and data
directories; the machine's PostgreSQL on 5432 and RabbitMQ on 5672 are never touched).

PostgreSQL runs as the ``postgres`` user (initdb refuses root) and RabbitMQ as ``rabbitmq`` (its
server script switches to that user, so every node shares that user's Erlang cookie), so the
directories belong to them. Each server is started detached (its own session: a terminal's
Ctrl-C reaches the cluster's runner, which stops them in order) and stopped by its own tool.
Tests make these on free ports with unique node names under a temporary directory
(``tests/support/ha.py``); ``make run-ha`` uses the fixed ports under ``.run/ha``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

PG_PRIMARY_PORT = 5434
PG_REPLICA_PORT = 5433
AMQP_PORTS = (5701, 5702, 5703)
MANAGEMENT_PORTS = (15701, 15702, 15703)
DIST_PORTS = (25701, 25702, 25703)
# nginx's stream balancer in front of the three nodes: the one AMQP address the services get.
AMQP_BALANCER_PORT = 5700
NODE_PREFIX = "osago"
# Replicated job queues: one member per node.
QUORUM_GROUP_SIZE = 3

START_TIMEOUT_S = 90.0
PG_USER = "postgres"


class StoreError(RuntimeError):
    """A store did not start or stop; the message says which and quotes its tool."""


def _as_user(user: str, argv: list[str]) -> list[str]:
    """Run as ``user`` when we are root (initdb and postgres refuse root); as ourselves otherwise."""
    if os.geteuid() == 0:
        return ["runuser", "-u", user, "--", *argv]
    return argv


def _run(argv: list[str], what: str, *, timeout: float = START_TIMEOUT_S) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise StoreError(f"{what}: timed out after {timeout:g} s ({' '.join(argv)})") from None
    if done.returncode != 0:
        raise StoreError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}")
    return done.stdout


def _chown(path: Path, user: str) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _open_parents(path: Path) -> None:
    """The servers' users must traverse every parent (a test's temporary directory is 0700)."""
    for parent in [path, *path.parents]:
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005 and parent.owner() == pwd.getpwuid(os.geteuid()).pw_name:
            parent.chmod(mode | 0o005)


@dataclass(frozen=True, slots=True)
class PostgresServer:
    name: str
    data_dir: Path
    port: int

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    def url(self, database: str) -> str:
        return f"postgres://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data_dir}"
        argv = ["pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.log_path), "-w", "-t", "60", "start"]
        _run(_as_user(PG_USER, argv), f"starting PostgreSQL {self.name} on {self.port}")

    def stop(self) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        argv = ["pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"]
        _run(_as_user(PG_USER, argv), f"stopping PostgreSQL {self.name}")

    def running(self) -> bool:
        argv = ["pg_ctl", "-D", str(self.data_dir), "status"]
        return subprocess.run(_as_user(PG_USER, argv), capture_output=True, check=False).returncode == 0


@dataclass(frozen=True, slots=True)
class RabbitNode:
    name: str  # Erlang node name, e.g. osago1@localhost
    base_dir: Path
    amqp_port: int
    dist_port: int
    management_port: int | None

    @property
    def pid_file(self) -> Path:
        return self.base_dir / "pid"

    def environment(self) -> dict[str, str]:
        b = self.base_dir
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(b / "mnesia"),
            "RABBITMQ_LOG_BASE": str(b / "log"),
            "RABBITMQ_CONFIG_FILE": str(b / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(b / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
        }

    def prepare(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        plugins = "[rabbitmq_management]." if self.management_port is not None else "[]."
        (self.base_dir / "enabled_plugins").write_text(plugins + "\n")
        config = [f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}"]
        if self.management_port is not None:
            config += [f"management.tcp.port = {self.management_port}", "management.tcp.ip = 127.0.0.1"]
        (self.base_dir / "rabbitmq.conf").write_text("\n".join(config) + "\n")
        _chown(self.base_dir, "rabbitmq")

    def ctl(self, *command: str, timeout: float = 60.0) -> str:
        return _run(
            ["rabbitmqctl", "-n", self.name, *command], f"rabbitmqctl {command[0]} on {self.name}", timeout=timeout
        )

    @property
    def log_path(self) -> Path:
        return self.base_dir / "log" / f"{self.name}.log"

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _boot_failed_since(self, offset: int) -> bool:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return b"Application rabbit exited" in log.read()
        except FileNotFoundError:
            return False

    def start(self) -> None:
        """Start detached and wait until its RabbitMQ application runs.

        RabbitMQ 3.10 nodes of one cluster booting at the same moment sometimes fail their
        feature-flag check against a peer still booting (``incompatible_feature_flags`` with a
        ``badmap``): the application is started again (the whole node, when its VM went too).
        """
        offset = self._log_size()
        self._launch()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                self.ctl("await_startup", timeout=10)
                return
            except StoreError:
                # Until the VM has registered with epmd, rabbitmqctl cannot find it at all.
                if time.monotonic() > deadline:
                    raise
                if self._boot_failed_since(offset):
                    offset = self._log_size()
                    time.sleep(1)
                    if not self.alive():
                        self._launch()
                        continue
                    try:
                        self.ctl("start_app", timeout=60)
                    except StoreError:
                        pass  # awaited again, then retried or given up at the deadline
                time.sleep(0.5)

    def _launch(self) -> None:
        subprocess.run(
            ["rabbitmq-server", "-detached"], env=self.environment(), capture_output=True, check=False, timeout=60
        )

    def beam_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def alive(self) -> bool:
        pid = self.beam_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> int:
        """SIGKILL the node's Erlang VM (its pid from its own pid file, never a name match)."""
        pid = self.beam_pid()
        if pid is None:
            raise StoreError(f"{self.name} has no pid file")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        return pid

    def stop(self) -> None:
        if not self.alive():
            return
        try:
            self.ctl("shutdown", timeout=60)
        except StoreError:
            pid = self.beam_pid()
            if pid is not None and self.alive():
                os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class StorePorts:
    pg_primary: int = PG_PRIMARY_PORT
    pg_replica: int = PG_REPLICA_PORT
    amqp: tuple[int, ...] = AMQP_PORTS
    dist: tuple[int, ...] = DIST_PORTS
    # None: no management plugin (tests: a node starts faster without it).
    management: tuple[int, ...] | None = MANAGEMENT_PORTS

    @property
    def all_ports(self) -> list[int]:
        return [self.pg_primary, self.pg_replica, *self.amqp, *self.dist, *(self.management or ())]


class HaStores:
    """The primary, the replica and the RabbitMQ nodes under one directory."""

    def __init__(self, base_dir: Path, ports: StorePorts = StorePorts(), *, node_prefix: str = NODE_PREFIX) -> None:
        self.base_dir = base_dir.resolve()
        self.ports = ports
        pg_dir = self.base_dir / "postgres"
        self.primary = PostgresServer("primary", pg_dir / "primary", ports.pg_primary)
        self.replica = PostgresServer("replica", pg_dir / "replica", ports.pg_replica)
        management = ports.management or (None,) * len(ports.amqp)
        self.nodes = [
            RabbitNode(f"{node_prefix}{i}@localhost", self.base_dir / "rabbitmq" / f"n{i}", amqp, dist, mgmt)
            for i, (amqp, dist, mgmt) in enumerate(zip(ports.amqp, ports.dist, management, strict=True), start=1)
        ]

    # --- PostgreSQL ------------------------------------------------------------------------

    def start_postgres(self) -> None:
        pg_dir = self.primary.data_dir.parent
        pg_dir.mkdir(parents=True, exist_ok=True)
        _open_parents(pg_dir)
        _chown(pg_dir, PG_USER)
        if not (self.primary.data_dir / "PG_VERSION").exists():
            # initdb's pg_hba.conf (trust) already admits replication connections from 127.0.0.1.
            argv = [
                "initdb",
                "-D",
                str(self.primary.data_dir),
                "-U",
                PG_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
            _run(_as_user(PG_USER, argv), "initdb of the primary")
        self.primary.start()
        if not (self.replica.data_dir / "PG_VERSION").exists():
            argv = [
                "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", PG_USER,
                "-D", str(self.replica.data_dir), "-R", "-X", "stream", "--no-sync",
            ]  # fmt: skip
            _run(_as_user(PG_USER, argv), "pg_basebackup of the replica")
        self.replica.start()

    def stop_postgres(self) -> None:
        # The replica first: a primary stopping waits for its WAL senders' standbys.
        for server in (self.replica, self.primary):
            try:
                server.stop()
            except StoreError as exc:
                print(f"local_cluster: {exc}", flush=True)

    # --- RabbitMQ ----------------------------------------------------------------------------

    @property
    def cluster_marker(self) -> Path:
        return self.base_dir / "rabbitmq" / "clustered"

    def start_rabbitmq(self) -> None:
        """All nodes in parallel (a node that stopped before its peers waits for them), then the
        joins, once: the membership is kept in each node's data directory."""
        rabbit_dir = self.base_dir / "rabbitmq"
        rabbit_dir.mkdir(parents=True, exist_ok=True)
        _open_parents(rabbit_dir)
        for node in self.nodes:
            node.prepare()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(RabbitNode.start, self.nodes))
        if not self.cluster_marker.exists():
            first = self.nodes[0]
            for node in self.nodes[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", first.name)
                node.ctl("start_app")
            self.cluster_marker.write_text(" ".join(node.name for node in self.nodes) + "\n")

    def restart_node(self, index: int) -> None:
        """Start a node that was killed or stopped; it rejoins its cluster on its own."""
        self.nodes[index].start()

    def stop_rabbitmq(self) -> None:
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(RabbitNode.stop, self.nodes))

    def add_vhost(self, vhost: str, user: str = "guest") -> None:
        self.nodes[0].ctl("add_vhost", vhost)
        self.nodes[0].ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")

    # --- together ------------------------------------------------------------------------------

    def start(self) -> None:
        """Both at once: PostgreSQL's start takes a few seconds, RabbitMQ's 10-20 s."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(self.start_postgres), pool.submit(self.start_rabbitmq)]
            errors = [f.exception() for f in futures]
        failed = [e for e in errors if e is not None]
        if failed:
            self.stop()
            raise failed[0]

    def stop(self) -> None:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda stop: stop(), [self.stop_postgres, self.stop_rabbitmq]))

    def remove(self) -> None:
        shutil.rmtree(self.base_dir, ignore_errors=True)
