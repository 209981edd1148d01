"""Services started as real subprocesses, the way `make run` starts them."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

LOG_DIR = Path(__file__).resolve().parents[1] / "artifacts" / "logs"


# Outside the kernel's ephemeral range (32768-60999), where outgoing connections would race us.
_PORT_RANGE = (20000, 30000)


def free_port() -> int:
    while True:
        port = random.randint(*_PORT_RANGE)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


@dataclass
class ServiceProcess:
    name: str
    module: str
    env: dict[str, str]
    port: int | None = None
    # Readiness for processes without /readyz (workers): a line their log prints once consuming.
    ready_marker: bytes | None = None
    # Command-line arguments after ``python -m module``, and where the log goes.
    args: tuple[str, ...] = ()
    log_dir: Path = LOG_DIR
    # Another source tree to run the module from (an older revision's git worktree); None: this one.
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log_offset: int = field(default=0, init=False)

    @property
    def url(self) -> str:
        assert self.port is not None
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(self.env)
        env.setdefault("OSAGO_INSTANCE_NAME", f"-{self.name}")
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        if self.port is not None:
            env["OSAGO_PORT"] = str(self.port)
        if self.cwd is not None:
            # ``python -m`` puts the working directory first on sys.path and PYTHONPATH next, both
            # ahead of the venv's editable install of this tree, so the child imports the other
            # tree's packages (PYTHONPATH also covers modules that change directory or spawn).
            env["PYTHONPATH"] = str(self.cwd)
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            argv = [sys.executable, "-m", self.module, *self.args]
            self.process = subprocess.Popen(argv, cwd=self.cwd, env=env, stdout=log, stderr=log)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until /readyz answers 200 (HTTP services) or the log says it is consuming (workers)."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
                if self.ready_marker is not None:
                    if self.ready_marker in self.log_since_start():
                        return
                else:
                    try:
                        async with session.get(f"{self.url}/readyz", timeout=aiohttp.ClientTimeout(total=1)) as r:
                            if r.status == 200 and await self._answered_by_own_process(session):
                                return
                    except (TimeoutError, aiohttp.ClientError):
                        pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout}s; see {self.log_path}")

    async def _answered_by_own_process(self, session: aiohttp.ClientSession) -> bool:
        """Another run may have taken the port first: check the pid behind it."""
        async with session.get(f"{self.url}/healthz", timeout=aiohttp.ClientTimeout(total=1)) as response:
            if response.status != 200:
                return False
            body = await response.json()
        assert self.process is not None
        return body.get("pid", self.process.pid) == self.process.pid

    def log_since_start(self) -> bytes:
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read()

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def stop(self, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def service_env(base: dict[str, str], **overrides: str) -> dict[str, str]:
    env = dict(base)
    env.update(overrides)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("PATH", os.environ.get("PATH", ""))
    return env
