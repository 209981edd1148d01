"""`make run`'s supervisor for real (python -m local_cluster run, one of each service, on ports,
a database and a vhost of its own): a SIGKILLed worker is restarted, the balancer answers, and a
stop (SIGINT, as Ctrl-C) ends every process and exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from local_cluster.background import start_runner
from local_cluster.layout import Layout
from tests.support.infrastructure import RunInfrastructure, private_infrastructure
from tests.support.supervised import REPOSITORY, free_offset, status, until

pytestmark = pytest.mark.usefixtures("nginx_installed")

COUNTS = {"OSAGO_CORE_INSTANCES": "1", "OSAGO_AGGREGATOR_INSTANCES": "1", "OSAGO_WORKER_INSTANCES": "1"}


@pytest.fixture
async def own_infrastructure() -> AsyncIterator[RunInfrastructure]:
    async with private_infrastructure(prefix="osago_test_cluster") as (infrastructure, _):
        yield infrastructure


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_the_supervisor_restarts_a_killed_worker_and_stops_with_0(own_infrastructure: RunInfrastructure) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="osago-cluster-"))  # short: the supervisor's unix socket
    offset = free_offset()
    layout = Layout(1, 1, 1, offset)
    output = run_dir / "run.out"
    runner = start_runner(run_dir, offset, own_infrastructure.env(**COUNTS), output)
    try:
        expected = {"sandbox", "balancer", "aggregator:aggregator1", "worker:worker1", "core:core1"}

        async def all_running() -> bool:
            states = status(run_dir)
            return set(states) == expected and all(state == "RUNNING" for state, _ in states.values())

        assert await until(all_running, 25), (status(run_dir), output.read_text()[-3000:])
        async with aiohttp.ClientSession() as session:

            async def balancer_ready() -> bool:
                try:
                    async with session.get(f"http://127.0.0.1:{layout.core_balancer_port}/readyz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            assert await until(balancer_ready, 15)
        pids = {name: pid for name, (_, pid) in status(run_dir).items()}
        worker_pid = pids["worker:worker1"]
        assert worker_pid is not None
        os.kill(worker_pid, signal.SIGKILL)

        async def worker_back() -> bool:
            state, pid = status(run_dir)["worker:worker1"]
            return state == "RUNNING" and pid not in (None, worker_pid)

        assert await until(worker_back, 10), status(run_dir)
        # The others were left alone.
        after = {name: pid for name, (_, pid) in status(run_dir).items()}
        assert {k: v for k, v in after.items() if k != "worker:worker1"} == {
            k: v for k, v in pids.items() if k != "worker:worker1"
        }

        runner.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert runner.wait(timeout=30) == 0
        children = [pid for pid in after.values() if pid is not None]
        assert not [pid for pid in children if alive(pid)]
        text = output.read_text()
        assert re.search(r"^worker1 +\| .*worker consuming", text, re.M)  # every log, by name
        assert "exited: worker1 (terminated by SIGKILL; not expected)" in text
        assert "local_cluster: supervisord exited with 0" in text
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        shutil.rmtree(run_dir, ignore_errors=True)


class Terminal:
    """A pseudo-terminal session running ``argv``, read continuously so the child never blocks."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.output = bytearray()
        self.pid, self._fd = pty.fork()
        if self.pid == 0:  # the child: the session leader of the new terminal, as a login shell is
            os.chdir(REPOSITORY)
            os.execvpe(argv[0], argv, env)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):  # EIO once the session's last process closed it
            while chunk := os.read(self._fd, 65536):
                self.output += chunk

    def press_ctrl_c(self) -> None:
        os.write(self._fd, b"\x03")  # the terminal turns it into SIGINT for its foreground group

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)

    def exit_code(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, wait_status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reader.join(5)
                return os.waitstatus_to_exitcode(wait_status)
            time.sleep(0.1)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"still running after {timeout} s:\n{self.output.decode(errors='replace')[-3000:]}")


async def test_ctrl_c_in_a_terminal_ends_make_run_with_0(own_infrastructure: RunInfrastructure) -> None:
    """GNU make re-raises the SIGINT that Ctrl-C sends it: `make run` ended 130 (killed by SIGINT)
    although every service stopped cleanly, until the runner took the terminal for itself."""
    run_dir = Path(tempfile.mkdtemp(prefix="osago-cluster-"))
    offset = free_offset()
    runner = f"{sys.executable} -m local_cluster --run-dir {run_dir} --port-offset {offset} run"
    (run_dir / "Makefile").write_text(f"run:\n\t{runner}\n")
    terminal = Terminal(["make", "-s", "-f", str(run_dir / "Makefile"), "run"], own_infrastructure.env(**COUNTS))
    try:

        async def all_running() -> bool:
            states = status(run_dir)
            return len(states) == 5 and all(state == "RUNNING" for state, _ in states.values())

        assert await until(all_running, 25), (status(run_dir), terminal.output.decode(errors="replace")[-3000:])
        children = [pid for _, pid in status(run_dir).values() if pid is not None]
        terminal.press_ctrl_c()
        assert await asyncio.to_thread(terminal.exit_code, 30) == 0, terminal.output.decode(errors="replace")[-3000:]
        assert not [pid for pid in children if alive(pid)]
        assert b"local_cluster: supervisord exited with 0" in terminal.output
    finally:
        terminal.close()
        shutil.rmtree(run_dir, ignore_errors=True)
