"""nginx from local_cluster.nginx in front of real core app processes, on ports of its own:
POSTs and offers sockets pass through it, a SIGKILLed instance is taken out while requests keep
succeeding, X-Forwarded-For decides quota buckets only from a trusted proxy, and the access log
never holds a socket's ?token=."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from local_cluster.nginx import Balancer, render_config, temp_dirs
from tests.support.cluster import Cluster
from tests.support.infrastructure import RunInfrastructure
from tests.support.processes import ServiceProcess, free_port
from tests.support.samples import sample_application
from tests.support.system import collect_offer_events

pytestmark = pytest.mark.usefixtures("nginx_installed")

BROWSER_RPS = 3


@dataclass
class Balanced:
    cluster: Cluster
    cores: list[ServiceProcess]  # behind nginx, trusting it
    untrusting: ServiceProcess  # a core app with no trusted proxy
    url: str
    run_dir: Path
    nginx: subprocess.Popen[bytes]

    def access_log(self) -> str:
        return (self.run_dir / "nginx-access.log").read_text()

    def error_log(self) -> str:
        path = self.run_dir / "nginx-error.log"
        return path.read_text() if path.exists() else ""


async def wait_until_listening(url: str, timeout: float = 10.0) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(timeout / 0.1)):
            try:
                async with session.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"nothing answers on {url}")


def start_nginx(run_dir: Path, config: Path) -> subprocess.Popen[bytes]:
    """nginx in the foreground (daemon off), every file it writes under ``run_dir``."""
    command = ["nginx", "-p", str(run_dir), "-c", str(config), "-e", str(run_dir / "nginx-error.log")]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="module")
async def balanced(
    infrastructure: RunInfrastructure, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Balanced]:
    run_dir = tmp_path_factory.mktemp("nginx")
    async with aiohttp.ClientSession() as session:
        cluster = Cluster(infrastructure, session, OSAGO_BROWSER_RPS=str(BROWSER_RPS))
        await cluster.start(cluster.sandbox(), cluster.aggregator("lb-aggregator"))
        cores = [cluster.core(f"lb-core{n}", OSAGO_TRUSTED_PROXIES="127.0.0.1") for n in (1, 2)]
        untrusting = cluster.core("lb-core-untrusting")
        await cluster.start(cluster.worker("lb-worker"), *cores, untrusting)
        port = free_port()
        for directory in temp_dirs(run_dir):
            directory.mkdir(parents=True, exist_ok=True)
        config = run_dir / "nginx.conf"
        ports = [core.port for core in cores if core.port is not None]
        config.write_text(render_config([Balancer("core_apps", port, ports)], run_dir))
        nginx = start_nginx(run_dir, config)
        try:
            await wait_until_listening(f"http://127.0.0.1:{port}")
            yield Balanced(cluster, cores, untrusting, f"http://127.0.0.1:{port}", run_dir, nginx)
        finally:
            nginx.send_signal(signal.SIGTERM)
            nginx.wait(10)
            await cluster.stop()


async def post_garbage(session: aiohttp.ClientSession, url: str, forwarded_for: str) -> int:
    """A request that passes the gate (and spends quota) and then stops at 400 in the core app."""
    async with session.post(
        f"{url}/api/v1/applications",
        data=b"{",
        headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
    ) as response:
        return response.status


async def test_a_post_and_an_offers_socket_pass_through_the_balancer(balanced: Balanced) -> None:
    session = balanced.cluster.session
    pids = set()
    for _ in range(4):
        async with session.get(f"{balanced.url}/healthz") as response:
            pids.add((await response.json())["pid"])
    assert pids == {core.pid for core in balanced.cores}  # both instances serve

    async with session.post(
        f"{balanced.url}/api/v1/applications", json=sample_application(), headers={"X-Forwarded-For": "203.0.113.20"}
    ) as response:
        assert response.status == 201, await response.text()
        created = await response.json()
    events, close_code = await collect_offer_events(session, balanced.url, created, timeout=30)
    assert close_code == 1000
    assert events[-1]["type"] == "complete"
    assert len({event["event_id"] for event in events}) == len(events)


async def test_forwarded_clients_get_their_own_buckets_from_a_trusted_balancer(balanced: Balanced) -> None:
    session = balanced.cluster.session
    # One client past its quota on both instances (round robin: half of them each)...
    statuses = [await post_garbage(session, balanced.url, "203.0.113.10") for _ in range(BROWSER_RPS * 4)]
    assert 429 in statuses and 400 in statuses
    # ...while another client behind the same balancer still passes, on either instance.
    assert [await post_garbage(session, balanced.url, "203.0.113.11") for _ in range(2)] == [400, 400]
    # What a client writes left of the balancer's own entry is not believed: a forged first hop
    # does not buy the exhausted client a fresh bucket.
    statuses = []
    for _ in range(BROWSER_RPS * 2):
        async with session.post(
            f"{balanced.url}/api/v1/applications",
            data=b"{",
            headers={"Content-Type": "application/json", "X-Forwarded-For": "1.1.1.1, 203.0.113.10"},
        ) as response:
            statuses.append(response.status)
    assert 429 in statuses


async def test_a_direct_client_cannot_forge_x_forwarded_for(balanced: Balanced) -> None:
    session = balanced.cluster.session
    # Without OSAGO_TRUSTED_PROXIES, every forged address is still the one TCP peer: one bucket.
    statuses = [await post_garbage(session, balanced.untrusting.url, f"203.0.113.{n}") for n in range(BROWSER_RPS * 2)]
    assert statuses[:BROWSER_RPS] == [400] * BROWSER_RPS
    assert 429 in statuses[BROWSER_RPS:]


async def test_a_killed_instance_is_taken_out_and_requests_keep_succeeding(balanced: Balanced) -> None:
    session = balanced.cluster.session
    killed, survivor = balanced.cores
    log_before = len(balanced.access_log())
    killed.kill()
    pids = []
    for _ in range(10):
        async with session.get(f"{balanced.url}/healthz") as response:
            assert response.status == 200
            pids.append((await response.json())["pid"])
    assert set(pids) == {survivor.pid}
    # Passive health check: after its first failed try the dead instance is skipped (fail_timeout).
    tried_dead = [line for line in balanced.access_log()[log_before:].splitlines() if f":{killed.port}" in line]
    assert len(tried_dead) <= 1, tried_dead
    async with session.post(
        f"{balanced.url}/api/v1/applications", json=sample_application(), headers={"X-Forwarded-For": "203.0.113.30"}
    ) as response:
        assert response.status == 201, await response.text()
        created = await response.json()
    events, close_code = await collect_offer_events(session, balanced.url, created, timeout=30)
    assert close_code == 1000 and events[-1]["type"] == "complete"


async def test_the_access_log_never_holds_a_token(balanced: Balanced) -> None:
    log = balanced.access_log()
    assert "/offers" in log and "/api/v1/applications" in log  # the sockets were logged, by path
    assert "token=" not in log and "?" not in log
    assert "token=" not in balanced.error_log()
