"""4. WebSockets: idle sockets one core app holds, memory per socket, fan-out rate, publish→client latency.

The same client drives a bare aiohttp server first (bench/raw_ws_server.py: the
machine's limit for one aiohttp process) and then one core app instance with its
offer hub consuming the offers fanout of a private vhost:

- idle: N browser-like sockets (``/api/v1/applications/{id}/offers?token=...``, Origin
  set), spread over source addresses 127.0.0.x, ten on each of a thousand pending
  applications; RSS growth of the server process divided by N;
- fan-out: events published to ``osago.offers`` (as a worker does, with confirms) for
  those applications; every socket of an application receives each; socket messages
  per second at the clients;
- latency: events at a steady rate, from the moment before publish to the client's receipt.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
from hdrh.histogram import HdrHistogram

from bench.infra import private_infrastructure
from bench.loadgen import sample_body, summary
from bench.revisions import describe_source, source_tree
from bench.system import (
    LOG_DIR,
    TOKEN_SECRET,
    CpuMeter,
    Service,
    finish_profile,
    free_port,
    own_pid,
    raise_fd_limit,
    rss_bytes,
    start_profile,
    start_system,
    stop_system,
)
from shared.intake.access import issue_access_token
from shared.intake.schema import parse_application
from shared.quoting import insurers as catalogue
from shared.quoting.topology import OFFERS_EXCHANGE

# A core app holds at most OSAGO_WS_MAX_SOCKETS_PER_APPLICATION (10) sockets per application,
# as a browser has a tab or two per application: 10,000 sockets are spread over 1,000.
APPLICATIONS = 1000
CONNECT_CONCURRENCY = 200
PADDING = 300  # bytes: an offer event is about 450 bytes of JSON


class Clients:
    """Many WebSocket clients in this process, counting and timing what they receive."""

    def __init__(self) -> None:
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.received = 0
        self.closed: Counter[str] = Counter()
        self.latency = HdrHistogram(1, 600_000_000, 3)
        self.last_receipt = 0.0
        self.measure_latency = False
        addresses = [f"127.0.0.{n}" for n in range(2, 42)]
        self._sessions = [
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, local_addr=(a, 0))) for a in addresses
        ]

    async def connect(self, urls: list[str], origin: str | None) -> float:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        failures: Counter[str] = Counter()

        async def one(n: int, url: str) -> None:
            async with gate:
                try:
                    ws = await self._sessions[n % len(self._sessions)].ws_connect(
                        url,
                        headers={"Origin": origin} if origin else None,
                        autoping=True,
                        max_msg_size=0,
                        compress=15,  # offered, as browsers do; the core app declines it
                    )
                except aiohttp.WSServerHandshakeError as exc:
                    failures[f"handshake_{exc.status}"] += 1
                    return
                except (aiohttp.ClientError, OSError) as exc:
                    failures[type(exc).__name__] += 1
                    return
                self.sockets.append(ws)
                self.tasks.append(asyncio.create_task(self._read(ws)))

        started = time.perf_counter()
        await asyncio.gather(*(one(n, url) for n, url in enumerate(urls)))
        if failures:
            print(f"[websockets] connect failures: {dict(failures)}", file=sys.stderr)
        return time.perf_counter() - started

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            now = time.time()
            self.received += 1
            self.last_receipt = now
            if self.measure_latency:
                sent = json.loads(message.data).get("sent")
                if sent:
                    self.latency.record_value(max(1, int((now - sent) * 1e6)))
        self.closed[str(ws.close_code)] += 1

    async def wait_received(self, expected: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.received < expected and time.monotonic() < deadline:  # noqa: ASYNC110 (polling a child process or a counter; there is no event to wait on)
            await asyncio.sleep(0.05)
        return self.received >= expected

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in self._sessions))


async def _rss_settled(pid: int) -> int:
    await asyncio.sleep(1.0)
    return rss_bytes(pid)


async def raw_aiohttp(idle: int, messages: int) -> dict[str, Any]:
    port = free_port()
    server = Service("raw-ws", "bench.raw_ws_server", dict(os.environ), port, args=(str(port),), log_dir=LOG_DIR)
    server.start()
    clients = Clients()
    try:
        await _wait_http(f"{server.url}/count")
        await clients.connect([f"{server.url}/ws"] * 100, None)
        before = await _rss_settled(server.pid)
        connect_s = await clients.connect([f"{server.url}/ws"] * (idle - 100), None)
        after = await _rss_settled(server.pid)
        held = len(clients.sockets)
        meter = CpuMeter({"raw aiohttp server": [server.pid], "clients (bench)": [own_pid()]})
        async with aiohttp.ClientSession() as session:
            meter.start()
            started = time.time()
            async with session.post(f"{server.url}/push", params={"count": str(messages), "pad": str(PADDING)}) as r:
                await r.json()
            await clients.wait_received(messages, 120)
            elapsed = clients.last_receipt - started
            cpu = meter.stop()
        return {
            "sockets_held": held,
            "connect_per_s": round((held - 100) / connect_s),
            "rss_per_socket_bytes": round((after - before) / max(1, held - 100)),
            "messages": messages,
            "messages_per_s": round(clients.received / elapsed),
            "cpu": cpu,
        }
    finally:
        await clients.close()
        await server.stop()


async def _wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(url)


async def _pending_applications(database_url: str, count: int) -> list[str]:
    """Pending applications with ten pending quotes each, written straight to the database."""
    payload = json.dumps(parse_application(sample_body(0), today=date.today()).to_payload())
    ids = [uuid.uuid4() for _ in range(count)]
    conn = await asyncpg.connect(database_url)
    try:
        deadline = datetime.now(UTC) + timedelta(hours=1)
        await conn.executemany(
            "INSERT INTO application (id, status, client_scope, request_fingerprint, payload, region_code, deadline, "
            "created_at, complete_event_published) VALUES ($1, 'pending', 'service', 'x', $2, '77', $3, now(), false)",
            [(i, payload, deadline) for i in ids],
        )
        await conn.executemany(
            "INSERT INTO quote (id, application_id, insurer_code, insurer_name, status, attempts, job_published, "
            "event_published, created_at) VALUES ($1, $2, $3, $4, 'pending', 0, true, false, now())",
            [(uuid.uuid4(), i, insurer.code, insurer.name) for i in ids for insurer in catalogue.CATALOGUE],
        )
    finally:
        await conn.close()
    return [str(i) for i in ids]


async def _publish_burst_in_child(amqp_url: str, application_ids: list[str], events: int) -> tuple[float, float]:
    """Publish ``events`` offer-sized events from a child process; its wall-clock start and duration."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.websockets",
        "--publish-burst",
        str(events),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate(json.dumps({"amqp_url": amqp_url, "ids": application_ids}).encode())
    if child.returncode != 0:
        raise RuntimeError(f"the publishing child exited with {child.returncode}")
    report = json.loads(out)
    return float(report["started"]), float(report["seconds"])


async def _publish_burst(amqp_url: str, application_ids: list[str], events: int) -> dict[str, float]:
    connection = await aio_pika.connect(amqp_url)
    try:
        # No confirms: the publisher must outpace the core app, whose delivery rate is measured.
        channel = await connection.channel(publisher_confirms=False)
        exchange = await channel.get_exchange(OFFERS_EXCHANGE)
        padding = "x" * PADDING
        messages = [_event(application_ids[n % len(application_ids)], padding) for n in range(events)]
        started, clock = time.time(), time.monotonic()
        for message in messages:
            await exchange.publish(message, routing_key="")
        return {"started": started, "seconds": time.monotonic() - clock}
    finally:
        await connection.close()


def _event(application_id: str, padding: str) -> aio_pika.Message:
    body = {
        "type": "bench",
        "event_id": str(uuid.uuid4()),
        "application_id": application_id,
        "sent": time.time(),
        "pad": padding,
    }
    return aio_pika.Message(
        json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
        message_id=body["event_id"],
        type="bench",
        headers={"application_id": application_id},
    )


async def core_app(
    idle: int,
    events: int,
    latency_rate: float,
    latency_s: float,
    core_module: str = "core_app",
    source: Path | None = None,
) -> dict[str, Any]:
    """``source``: the core app of an older revision (``bench.revisions.source_tree``); None: this tree."""
    async with private_infrastructure("ws", deadline_s=900) as infra:
        system = await start_system(infra, cores=1, with_workers=False, core_module=core_module, source=source)
        core = system.cores[0]
        clients = Clients()
        connection = await aio_pika.connect(infra.amqp_url)
        try:
            ids = await _pending_applications(infra.database_url, APPLICATIONS)
            urls = [
                f"{core.url}/api/v1/applications/{i}/offers?token={issue_access_token(i, TOKEN_SECRET, int(time.time()) + 86_400)}"
                for i in ids
            ]
            await clients.connect(urls, core.url)  # warm-up: one socket per application
            before = await _rss_settled(core.pid)
            profile = start_profile(core.pid, 10, f"websockets-{core_module}-connect")
            connect_meter = CpuMeter({"core app": [core.pid], "clients (bench)": [own_pid()]})
            connect_meter.start()
            connect_s = await clients.connect([urls[n % len(urls)] for n in range(idle - len(urls))], core.url)
            connect_cpu = connect_meter.stop()
            connect_profile = await finish_profile(profile, 10)
            after = await _rss_settled(core.pid)
            held = len(clients.sockets)
            print(f"[websockets] core app holds {held} sockets", file=sys.stderr)

            # The bench publishes without waiting for confirms, so that the publisher outpaces
            # the core app and what is measured is the core app's delivery rate.
            channel = await connection.channel(publisher_confirms=False)
            exchange = await channel.get_exchange(OFFERS_EXCHANGE)
            padding = "x" * PADDING
            per_app = held / len(ids)

            # Fan-out burst: every event goes to every socket of its application. The events come
            # from a child process: published from this one, they would queue behind the clients'
            # 10,000 sockets on one event loop, and the publisher would be what is measured.
            meter = CpuMeter({"core app": [core.pid], "clients (bench)": [own_pid()]})
            meter.start()
            started, publish_s = await _publish_burst_in_child(infra.amqp_url, ids, events)
            expected = int(events * per_app)
            complete = await clients.wait_received(expected, 120)
            elapsed = clients.last_receipt - started
            fanout_cpu = meter.stop()
            # The profile comes from a second burst: py-spy costs CPU the measured one must not lose.
            profile = start_profile(core.pid, 5, f"websockets-{core_module}-fanout")
            await _publish_burst_in_child(infra.amqp_url, ids, events)
            await clients.wait_received(2 * expected, 120)
            profile_summary = await finish_profile(profile, 5)
            fanout = {
                "events_published": events,
                "events_published_per_s": round(events / publish_s),
                "socket_messages_expected": expected,
                "socket_messages_received": clients.received - expected,
                "all_received": complete,
                "socket_messages_per_s": round(expected / elapsed),
                "sockets_closed_by_server": dict(clients.closed),
                "cpu": fanout_cpu,
                "core_app_profile": profile_summary,
            }

            # Latency at a steady rate, open loop, from just before publish to receipt.
            clients.measure_latency = True
            base = clients.received
            count = int(latency_rate * latency_s)
            t0 = time.monotonic()
            for n in range(count):
                delay = t0 + n / latency_rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await exchange.publish(_event(ids[n % len(ids)], padding), routing_key="")
            await clients.wait_received(base + int(count * per_app), 60)
            latency = {
                "events_per_s": latency_rate,
                "socket_messages_per_s": round(latency_rate * per_app),
                **summary(clients.latency),
            }
            rss_after_all = rss_bytes(core.pid)
        finally:
            await connection.close()
            await clients.close()
            await stop_system(system)
    return {
        "code": describe_source(source),
        "core_module": core_module,
        "applications": APPLICATIONS,
        "sockets_held": held,
        "connect_per_s": round((held - APPLICATIONS) / connect_s),
        "connect_cpu": connect_cpu,
        "connect_profile": connect_profile,
        "rss_per_socket_bytes": round((after - before) / max(1, held - APPLICATIONS)),
        "rss_mib_with_all_sockets": round(rss_after_all / 2**20, 1),
        "fanout": fanout,
        "publish_to_client_latency": latency,
    }


async def run(
    idle: int = 10_000, events: int = 2_000, latency_rate: float = 20.0, latency_s: float = 5.0
) -> dict[str, Any]:
    limit = raise_fd_limit()
    if limit < idle + 1000:
        idle = limit - 1000
    raw = await raw_aiohttp(idle, events * (idle // APPLICATIONS))
    core = await core_app(idle, events, latency_rate, latency_s)
    return {"fd_limit": limit, "raw_aiohttp": raw, "core_app": core}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.websockets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--core-only", action="store_true", help="skip the bare aiohttp baseline")
    parser.add_argument(
        "--before", metavar="REV", default=None, help="with --core-only: the core app of that revision (a git worktree)"
    )
    parser.add_argument("--publish-burst", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish_burst:  # the child of _publish_burst_in_child: URL and ids on stdin
        given = json.loads(sys.stdin.read())
        print(json.dumps(asyncio.run(_publish_burst(given["amqp_url"], given["ids"], args.publish_burst))))
        return
    if args.core_only:
        raise_fd_limit()
        source = None if args.before is None else source_tree(args.before)
        result = asyncio.run(core_app(args.sockets, args.events, 20.0, 5.0, source=source))
    else:
        result = asyncio.run(run(args.sockets, args.events))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
