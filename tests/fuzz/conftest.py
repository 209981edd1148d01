"""The system the fuzz tests aim at: real processes on a database and vhost of their own.

One core app, one aggregator API, one quote worker and the insurer sandbox run as
subprocesses (schemathesis calls them with ``requests``, synchronously, from the test's
thread, so nothing of theirs may share the test's event loop). Two partners are made with
``osago-admin create-partner``, and three applications exist before the first generated
request: one of the first partner's, complete with offers; one made on the browser path
(read with its access token); one still pending (its insurer hangs) for a while.

Rows are counted with a connection of the tests' own, on a thread of its own.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import pytest

from tests.support.infrastructure import RunInfrastructure, private_infrastructure
from tests.support.processes import ServiceProcess, free_port, service_env
from tests.support.samples import sample_application

T = TypeVar("T")

ADMIN = Path(sys.executable).with_name("osago-admin")
SERVICE_TOKEN = "fuzz-service-token"
TOKEN_SECRET = "fuzz-token-secret"
# Three insurers, one per protocol: every generated 201 costs three jobs, not ten.
INSURERS = ("sever", "volga", "ural")
HANGING_INSURER = "ural"
# Long enough for the pending application to stay pending through part of the run, short
# enough that it completes (timed_out) during it: both shapes of GET are validated.
DEADLINE_S = 30.0
PARTNER_RPS = 10_000  # the fuzzer must never meet the quota (429 is documented, but says nothing)

# Requests generated per operation, ``make test`` and ``--fuzz-long``; see test_openapi_fuzz.py.
LONG_FACTOR = 6


@dataclass(frozen=True)
class Created:
    """An application made before the run: the 201 body, and whose it is."""

    id: str
    access_token: str
    partner: str | None  # "owner", or None for the browser path

    @classmethod
    def of(cls, body: dict[str, Any], partner: str | None) -> Created:
        return cls(body["id"], body["access_token"], partner)


class RowCounter:
    """``count(*)`` of application and quote, from synchronous test code.

    asyncpg on an event loop of its own in a daemon thread: the tests' loop is not running
    while a synchronous test runs, and must not be re-entered.
    """

    def __init__(self, database_url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fuzz-row-counter", daemon=True)
        self._thread.start()
        self._connection: asyncpg.Connection = self._run(asyncpg.connect(database_url))

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def counts(self) -> tuple[int, int]:
        row = self._run(
            self._connection.fetchrow("SELECT (SELECT count(*) FROM application), (SELECT count(*) FROM quote)")
        )
        assert row is not None
        return int(row[0]), int(row[1])

    def close(self) -> None:
        self._run(self._connection.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


@dataclass
class FuzzSystem:
    infrastructure: RunInfrastructure
    core_url: str
    aggregator_url: str
    keys: dict[str, str]  # "owner", "other" -> API key
    partner_ids: dict[str, str]  # "owner", "other" -> partner id
    applications: dict[str, Created]  # "owner", "browser", "pending"
    rows: RowCounter
    long: bool
    processes: list[ServiceProcess] = field(default_factory=list, repr=False)


def create_partner(infrastructure: RunInfrastructure, name: str) -> str:
    """The README's command: the key is the last line it prints."""
    done = subprocess.run(
        [str(ADMIN), "create-partner", "--name", name, "--rps", str(PARTNER_RPS)],
        env=infrastructure.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


async def _partner_id(database_url: str, name: str) -> str:
    connection = await asyncpg.connect(database_url)
    try:
        return str(await connection.fetchval("SELECT id FROM partner WHERE name = $1", name))
    finally:
        await connection.close()


async def _create(session: aiohttp.ClientSession, core_url: str, headers: dict[str, str]) -> dict[str, Any]:
    async with session.post(f"{core_url}/api/v1/applications", json=sample_application(), headers=headers) as r:
        body = await r.json()
        assert r.status == 201, body
        return dict(body)


async def _wait_complete(session: aiohttp.ClientSession, core_url: str, created: dict[str, Any]) -> None:
    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:
        async with session.get(
            f"{core_url}{created['links']['self']}", headers={"Authorization": f"Bearer {created['access_token']}"}
        ) as r:
            body = await r.json()
            if body["status"] == "complete":
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"application {created['id']} still pending: {body}")


@pytest.fixture(scope="package")
async def fuzz_system(request: pytest.FixtureRequest) -> AsyncIterator[FuzzSystem]:
    long = bool(request.config.getoption("fuzz_long"))
    async with private_infrastructure(DEADLINE_S, prefix="osago_fuzz") as (infrastructure, _):
        sandbox_port, aggregator_port, core_port = free_port(), free_port(), free_port()
        env = service_env(
            infrastructure.env(),
            OSAGO_SERVICE_TOKEN=SERVICE_TOKEN,
            OSAGO_TOKEN_SECRET=TOKEN_SECRET,
            OSAGO_SANDBOX_URL=f"http://127.0.0.1:{sandbox_port}",
            OSAGO_AGGREGATOR_URL=f"http://127.0.0.1:{aggregator_port}",
            OSAGO_INSURERS=",".join(INSURERS),
            OSAGO_RELAY_INTERVAL_S="0.5",
            OSAGO_SWEEPER_GRACE_S="1",
            OSAGO_BROWSER_RPS="1000",
        )
        processes = [
            ServiceProcess("fuzz-sandbox", "quote_workers.sandbox", env, sandbox_port),
            ServiceProcess("fuzz-aggregator", "aggregator_api", env, aggregator_port),
            ServiceProcess("fuzz-worker", "quote_workers", env, ready_marker=b"worker consuming"),
            ServiceProcess("fuzz-core", "core_app", env, core_port),
        ]
        sandbox, aggregator, worker, core = processes
        rows: RowCounter | None = None
        try:
            for group in ([sandbox, aggregator], [worker, core]):
                for process in group:
                    process.start()
                await asyncio.gather(*(process.wait_ready() for process in group))
            names = {"owner": "Фаззинг владелец", "other": "Фаззинг чужой"}
            keys = dict(
                zip(
                    names,
                    await asyncio.gather(
                        *(asyncio.to_thread(create_partner, infrastructure, name) for name in names.values())
                    ),
                    strict=True,
                )
            )
            rows = RowCounter(infrastructure.database_url)
            partner_ids = {who: await _partner_id(infrastructure.database_url, n) for who, n in names.items()}
            async with aiohttp.ClientSession() as session:
                # Each key once before the first guess: core_app.partner_keys answers a key never seen
                # valid here with the 401 of a guess once this address has spent its failure budget.
                for key in keys.values():
                    async with session.get(f"{core.url}/api/v1/applications", headers={"X-API-Key": key}) as r:
                        assert r.status == 200, await r.text()
                owner = await _create(session, core.url, {"X-API-Key": keys["owner"]})
                browser = await _create(session, core.url, {})
                await asyncio.gather(
                    _wait_complete(session, core.url, owner), _wait_complete(session, core.url, browser)
                )
                async with session.put(
                    f"{sandbox.url}/sandbox/insurers/{HANGING_INSURER}/behaviour", json={"mode": "hang"}
                ) as r:
                    assert r.status == 200
                pending = await _create(session, core.url, {})
            yield FuzzSystem(
                infrastructure=infrastructure,
                core_url=core.url,
                aggregator_url=aggregator.url,
                keys=keys,
                partner_ids=partner_ids,
                applications={
                    "owner": Created.of(owner, "owner"),
                    "browser": Created.of(browser, None),
                    "pending": Created.of(pending, None),
                },
                rows=rows,
                long=long,
                processes=processes,
            )
        finally:
            if rows is not None:
                rows.close()
            codes = await asyncio.gather(*(process.stop() for process in reversed(processes)))
    assert all(code in (0, None) for code in codes), dict(
        zip([p.name for p in reversed(processes)], codes, strict=False)
    )


@pytest.fixture(scope="package")
def request_log() -> Iterator[dict[str, Any]]:
    """What the fuzz tests sent, by service and operation, written to tests/artifacts/fuzz/requests.json."""
    log: dict[str, Any] = {}
    yield log
    target = Path(__file__).resolve().parents[1] / "artifacts" / "fuzz" / "requests.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(log, indent=2, ensure_ascii=False, sort_keys=True))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("fuzz_long"):
        for item in items:
            if "tests/fuzz/" in item.nodeid or item.nodeid.startswith("fuzz/"):
                item.add_marker(pytest.mark.timeout(3600))
