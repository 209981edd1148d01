"""The machine a run happened on: CPU, cores, memory, library and server versions, commit."""

from __future__ import annotations

import asyncio
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import psutil

ROOT = Path(__file__).resolve().parents[1]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _run(*command: str) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=20, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


async def _postgres_version(postgres_url: str) -> str:
    try:
        conn = await asyncpg.connect(f"{postgres_url}/postgres", timeout=5)
    except (OSError, asyncpg.PostgresError):
        return "unreachable"
    try:
        version = await conn.fetchval("SHOW server_version")
        settings = await conn.fetch(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('synchronous_commit', 'fsync', 'shared_buffers', 'max_connections')"
        )
        return f"{version} ({', '.join(f'{r[0]}={r[1]}' for r in settings)})"
    finally:
        await conn.close()


async def describe(postgres_url: str) -> dict[str, Any]:
    commit = _run("git", "rev-parse", "--short=12", "HEAD")
    dirty = bool(_run("git", "status", "--porcelain", "--untracked-files=no"))
    rabbit = _run("rabbitmqctl", "version") or "unknown"
    return {
        "cpu_model": _cpu_model(),
        "cores": psutil.cpu_count(logical=True),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "rabbitmq": rabbit.splitlines()[-1] if rabbit else "unknown",
        "postgresql": await _postgres_version(postgres_url),
        "aiohttp": _version("aiohttp"),
        "aio-pika": _version("aio-pika"),
        "aiormq": _version("aiormq"),
        "asyncpg": _version("asyncpg"),
        "tortoise-orm": _version("tortoise-orm"),
        "pydantic": _version("pydantic"),
        "commit": commit + ("+dirty" if dirty else ""),
    }


if __name__ == "__main__":
    import json

    from bench.infra import POSTGRES_URL

    print(json.dumps(asyncio.run(describe(POSTGRES_URL)), indent=2))
