"""``python -m local_cluster run`` as a child process, for tests and benchmarks that run a cluster
of their own beside ``make run`` (a run directory and a port offset of their own)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from local_cluster.layout import REPOSITORY


def start_runner(run_dir: Path, offset: int, env: dict[str, str], output: Path) -> subprocess.Popen[bytes]:
    """Start the runner with its output (every program's log, by name) written to ``output``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "local_cluster", "--run-dir", str(run_dir), "--port-offset", str(offset), "run"],
            cwd=REPOSITORY,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
