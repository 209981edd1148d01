"""``python -m local_cluster run | run-ha | status | nginx-config`` (`make run`, `make run-ha`, `make status`).

``run`` writes the nginx and supervisord configurations for the instance counts
(``OSAGO_CORE_INSTANCES``, ``OSAGO_AGGREGATOR_INSTANCES``, ``OSAGO_WORKER_INSTANCES``), checks
the nginx one (``nginx -t``), starts supervisord in the foreground and streams every process's
log with its name in front, until Ctrl-C (or SIGTERM): then supervisord stops every program
gracefully and ``run`` exits with its code (0).

``run-ha`` does the same on data stores of its own (``local_cluster.stores``): it starts a
PostgreSQL primary (5434) and streaming replica (5433) and a three-node RabbitMQ cluster
(5701-5703, management 15701-15703) under ``.run/ha/stores``, migrates, runs the cluster with
an AMQP balancer (nginx stream, 127.0.0.1:5700) in front of the nodes, and stops the stores it
started when the cluster has stopped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

from local_cluster import nginx, supervisor
from local_cluster.layout import (
    DEFAULT_RUN_DIR,
    REPOSITORY,
    Layout,
    LayoutError,
    layout_from_env,
    service_environment,
)
from local_cluster.stores import AMQP_BALANCER_PORT, QUORUM_GROUP_SIZE, HaStores, StoreError
from local_cluster.terminal import own_foreground_group

DEFAULT_HA_RUN_DIR = REPOSITORY / ".run" / "ha"
HA_DATABASE = "osago"

POLL_S = 0.2


def nginx_config(layout: Layout, run_dir: Path, stores: HaStores | None = None) -> str:
    tcp = []
    if stores is not None:
        tcp.append(nginx.Balancer("rabbitmq", AMQP_BALANCER_PORT, [node.amqp_port for node in stores.nodes]))
    return nginx.render_config(
        [
            nginx.Balancer("core_apps", layout.core_balancer_port, layout.core_ports),
            nginx.Balancer("aggregators", layout.aggregator_balancer_port, layout.aggregator_ports),
        ],
        run_dir,
        tcp=tcp,
    )


def check_nginx(config: Path, run_dir: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on a generated configuration, writing nothing outside ``run_dir``."""
    command = ["nginx", "-t", "-q", "-p", str(run_dir), "-c", str(config), "-e", str(run_dir / "nginx-error.log")]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def write_configs(layout: Layout, run_dir: Path, stores: HaStores | None = None) -> tuple[Path, Path]:
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    for directory in nginx.temp_dirs(run_dir):
        directory.mkdir(parents=True, exist_ok=True)
    nginx_path = run_dir / "nginx.conf"
    nginx_path.write_text(nginx_config(layout, run_dir, stores))
    supervisor_path = run_dir / "supervisord.conf"
    supervisor_path.write_text(supervisor.render_config(layout, run_dir))
    return nginx_path, supervisor_path


def taken_ports(ports: list[int]) -> list[int]:
    taken = []
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                taken.append(port)
    return taken


class LogStreamer(threading.Thread):
    """Prints each new line of every log in ``logs`` as ``<name> | <line>`` (names from the file names)."""

    def __init__(self, logs: Path) -> None:
        super().__init__(name="log-streamer", daemon=True)
        self._logs = logs
        self._files: dict[Path, tuple[int, int, bytes]] = {}  # path → (inode, offset, partial line)
        self._done = threading.Event()
        # Lines already in the files when `run` started belong to an earlier run.
        for path in self._logs.glob("*.log"):
            stat = path.stat()
            self._files[path] = (stat.st_ino, stat.st_size, b"")

    def run(self) -> None:
        while not self._done.is_set():
            self.poll()
            self._done.wait(POLL_S)
        self.poll()

    def stop(self) -> None:
        self._done.set()
        self.join()

    def poll(self) -> None:
        for path in sorted(self._logs.glob("*.log")):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            inode, offset, partial = self._files.get(path, (stat.st_ino, 0, b""))
            if inode != stat.st_ino or stat.st_size < offset:  # rotated or truncated: a new file
                inode, offset, partial = stat.st_ino, 0, b""
            if stat.st_size == offset:
                continue
            with path.open("rb") as log:
                log.seek(offset)
                chunk = log.read()
            *lines, partial = (partial + chunk).split(b"\n")
            name = path.stem
            out = sys.stdout.buffer
            for line in lines:
                out.write(f"{name:<12}| ".encode() + line + b"\n")
            out.flush()
            self._files[path] = (inode, offset + len(chunk), partial)


def _refusal(run_dir: Path, layout_ports: list[int]) -> str | None:
    """Why the cluster cannot start here, or None."""
    if shutil.which("nginx") is None:
        return "nginx is not installed (`make run` installs Debian's package)"
    if (run_dir / "supervisor.sock").exists() and supervisorctl(run_dir, "pid").returncode == 0:
        return f"a cluster already runs from {run_dir} (`make status`)"
    taken = taken_ports(layout_ports)
    if taken:
        return f"ports already in use: {', '.join(map(str, taken))}"
    return None


def run(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir.resolve()
    try:
        layout = layout_from_env(os.environ, port_offset=args.port_offset)
    except LayoutError as exc:
        print(f"local_cluster: {exc}", file=sys.stderr)
        return 2
    refusal = _refusal(run_dir, layout.all_ports)
    if refusal is not None:
        print(f"local_cluster: {refusal}", file=sys.stderr)
        return 2
    nginx_path, supervisor_path = write_configs(layout, run_dir)
    checked = check_nginx(nginx_path, run_dir)
    if checked.returncode != 0:
        print(f"local_cluster: nginx -t failed on {nginx_path}:\n{checked.stderr}", file=sys.stderr)
        return 2
    _announce(layout, run_dir)
    with own_foreground_group():
        return supervise(supervisor_path, run_dir, service_environment(os.environ, layout))


def ha_environment(stores: HaStores) -> dict[str, str]:
    """The services' settings on the stores of `make run-ha` (the caller's own win)."""
    return {
        "OSAGO_DATABASE_URL": stores.primary.url(HA_DATABASE),
        "OSAGO_DATABASE_REPLICA_URL": stores.replica.url(HA_DATABASE),
        "OSAGO_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{AMQP_BALANCER_PORT}/",
        "OSAGO_AMQP_QUORUM_GROUP_SIZE": str(QUORUM_GROUP_SIZE),
    }


def run_ha(args: argparse.Namespace) -> int:
    run_dir: Path = (args.run_dir if args.run_dir != DEFAULT_RUN_DIR else DEFAULT_HA_RUN_DIR).resolve()
    try:
        layout = layout_from_env(os.environ, port_offset=args.port_offset)
    except LayoutError as exc:
        print(f"local_cluster: {exc}", file=sys.stderr)
        return 2
    stores = HaStores(run_dir / "stores")
    refusal = _refusal(run_dir, [*layout.all_ports, *stores.ports.all_ports, AMQP_BALANCER_PORT])
    if refusal is not None:
        print(f"local_cluster: {refusal}", file=sys.stderr)
        return 2
    if not Path(nginx.STREAM_MODULE).exists():
        print("local_cluster: nginx's stream module is missing (`make run-ha` installs it)", file=sys.stderr)
        return 2
    nginx_path, supervisor_path = write_configs(layout, run_dir, stores)
    checked = check_nginx(nginx_path, run_dir)
    if checked.returncode != 0:
        print(f"local_cluster: nginx -t failed on {nginx_path}:\n{checked.stderr}", file=sys.stderr)
        return 2
    env = service_environment({**ha_environment(stores), **os.environ}, layout)
    with own_foreground_group():
        try:
            print(f"local_cluster: starting PostgreSQL and RabbitMQ under {stores.base_dir}", flush=True)
            stores.start()
            print(
                f"local_cluster: PostgreSQL primary 127.0.0.1:{stores.primary.port}, replica "
                f"127.0.0.1:{stores.replica.port}; RabbitMQ {', '.join(n.name for n in stores.nodes)} on "
                f"{', '.join(str(n.amqp_port) for n in stores.nodes)} (management "
                f"{', '.join(str(n.management_port) for n in stores.nodes)}), services through 127.0.0.1:{AMQP_BALANCER_PORT}",
                flush=True,
            )
            # The balancer starts with the services: the migration talks to the first node itself.
            direct = {**env, "OSAGO_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{stores.nodes[0].amqp_port}/"}
            migrated = subprocess.run(
                [sys.executable, "-m", "aggregator_api.admin", "migrate"], env=direct, check=False
            )
            if migrated.returncode != 0:
                print("local_cluster: osago-admin migrate failed", file=sys.stderr)
                return 2
            _announce(layout, run_dir)
            return supervise(supervisor_path, run_dir, env)
        except StoreError as exc:
            print(f"local_cluster: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 0
        finally:
            print("local_cluster: stopping PostgreSQL and RabbitMQ", flush=True)
            stores.stop()


def _announce(layout: Layout, run_dir: Path) -> None:
    print(
        f"Web page: http://127.0.0.1:{layout.core_balancer_port}/ (balancer over {layout.cores} core apps on "
        f"{', '.join(map(str, layout.core_ports))}); aggregator API: http://127.0.0.1:{layout.aggregator_balancer_port} "
        f"({layout.aggregators} instances), {layout.workers} workers; logs in {run_dir / 'logs'}; "
        "`make status` shows what runs; Ctrl-C stops everything",
        flush=True,
    )


def supervise(supervisor_path: Path, run_dir: Path, env: dict[str, str]) -> int:
    """Run supervisord in the foreground, streaming the logs, until it exits; its exit code."""
    streamer = LogStreamer(run_dir / "logs")
    streamer.start()
    daemon = subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-c", str(supervisor_path)], env=env)

    def stop(signum: int, frame: FrameType | None) -> None:
        # Ctrl-C in a terminal reaches supervisord too (same process group); a signal sent to
        # this process alone is passed on. Either way supervisord stops every program gracefully.
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    code = daemon.wait()
    streamer.stop()
    print(f"local_cluster: supervisord exited with {code}", flush=True)
    return code if code >= 0 else 128 - code


def supervisorctl(run_dir: Path, *command: str) -> subprocess.CompletedProcess[str]:
    config = run_dir / "supervisord.conf"
    argv = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(config), *command]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def status(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir.resolve()
    if args.run_dir == DEFAULT_RUN_DIR and not (run_dir / "supervisor.sock").exists():
        run_dir = DEFAULT_HA_RUN_DIR.resolve()  # `make run-ha`'s, when `make run` is not running
    if not (run_dir / "supervisor.sock").exists():
        print(f"not running (no supervisor socket in {run_dir})")
        return 3
    result = supervisorctl(run_dir, "status")
    sys.stdout.write(result.stdout + result.stderr)
    return result.returncode


def print_nginx_config(args: argparse.Namespace) -> int:
    layout = layout_from_env(os.environ, port_offset=args.port_offset)
    sys.stdout.write(nginx_config(layout, args.run_dir.resolve()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="configs, pids, sockets and logs")
    parser.add_argument("--port-offset", type=int, default=0, help="added to every port (tests)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the cluster in the foreground")
    commands.add_parser("run-ha", help="the same on a PostgreSQL replica and a RabbitMQ cluster of its own")
    commands.add_parser("status", help="what runs (supervisorctl status)")
    commands.add_parser("nginx-config", help="print the balancers' nginx configuration")
    args = parser.parse_args(argv)
    handlers = {"run": run, "run-ha": run_ha, "status": status, "nginx-config": print_nginx_config}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
