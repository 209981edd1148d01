"""Abuse of the offers socket, against two core app instances in this process on a real socket each.

- a frame flood from the client (tens of thousands of small frames, as fast as they go): the
  server keeps reading them, keeps serving, and its memory does not grow with the flood;
- a client that never reads while events are pushed to it: what the server holds for it stays
  bounded (the subscription's list, the transport's buffer) and the socket is dropped within the
  send timeout, even while the client keeps sending frames (which keep the idle timeout and
  aiohttp's heartbeat from ever noticing: a client that talks is never pinged);
- many sockets on one application across two instances: each instance holds its own cap
  (``OSAGO_WS_MAX_SOCKETS_PER_APPLICATION``) and refuses one more with 429 ``too_many_streams``
  and ``Retry-After`` before the upgrade, while the other instance still accepts;
- a socket with another application's token: 404 before the upgrade, on either instance.

Applications are stored directly, without quotes, so their streams stay open as long as a test
needs; events are published to the real offers fanout, as workers publish them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from core_app.app import create_app
from core_app.typedefs import HUB, SOCKETS
from shared.live import stream
from shared.platform.amqp import ConfirmingPublisher, robust_connection
from shared.platform.settings import Settings
from shared.quoting.events import event_message
from shared.quoting.topology import OFFERS_EXCHANGE, declare_offers_exchange
from tests.support.cluster import eventually
from tests.support.in_process import in_process
from tests.support.infrastructure import RunInfrastructure
from tests.support.processes import free_port
from tests.support.stored import open_application

Client = TestClient[web.Request, web.Application]

MAX_SOCKETS = 4
IDLE_TIMEOUT_S = 3.0
HEARTBEAT_S = 1.0
SEND_TIMEOUT_S = 2.0  # the tests' own (stream.SEND_TIMEOUT_S is patched for them)
UPGRADE_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


@pytest.fixture(scope="module")
def settings(infrastructure: RunInfrastructure) -> Settings:
    return infrastructure.settings(
        aggregator_url=f"http://127.0.0.1:{free_port()}",  # down: nothing here needs it
        browser_rps=10_000.0,
        ws_idle_timeout_s=IDLE_TIMEOUT_S,
        ws_heartbeat_s=HEARTBEAT_S,
        ws_max_sockets_per_application=MAX_SOCKETS,
    )


@pytest.fixture(scope="module")
async def cores(settings: Settings) -> AsyncIterator[tuple[Client, Client]]:
    """Two instances, as behind the balancer: each with its own hub, quota book and socket cap."""
    async with in_process(create_app(settings)) as first, in_process(create_app(settings)) as second:
        yield first, second


@pytest.fixture
def short_send_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "SEND_TIMEOUT_S", SEND_TIMEOUT_S)


@pytest.fixture(scope="module")
async def publisher(infrastructure: RunInfrastructure) -> AsyncIterator[ConfirmingPublisher]:
    async with robust_connection(infrastructure.amqp_url, "ws-abuse-publisher") as connection:
        publisher = await ConfirmingPublisher.open(connection, 10.0)
        publisher.register(await declare_offers_exchange(publisher.channel))
        yield publisher


def offers_path(application_id: str, token: str) -> str:
    return f"/api/v1/applications/{application_id}/offers?token={token}"


async def push(publisher: ConfirmingPublisher, application_id: str, count: int, *, size: int) -> None:
    """``count`` progress events of about ``size`` bytes each (clients ignore types they do not know)."""
    padding = "x" * size
    for first in range(0, count, 100):
        messages = [
            (
                event_message(
                    {
                        "type": "progress",
                        "event_id": f"{application_id}:{n}",
                        "application_id": application_id,
                        "padding": padding,
                    }
                ),
                "",
            )
            for n in range(first, min(first + 100, count))
        ]
        assert len(await publisher.publish_many(OFFERS_EXCHANGE, messages)) == len(messages)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# --- a frame flood -------------------------------------------------------------------------------


async def test_a_frame_flood_is_read_and_ignored_without_memory_growing(
    cores: tuple[Client, Client], settings: Settings, publisher: ConfirmingPublisher
) -> None:
    core = cores[0]
    application_id, token = await open_application(settings)
    frames = 30_000
    async with core.ws_connect(offers_path(application_id, token)) as ws:
        await ws.send_str("warm-up")  # the server's first read allocates what it keeps
        await asyncio.sleep(0.2)
        before = rss_bytes()
        started = time.monotonic()

        async def flood() -> None:
            for n in range(frames):
                await ws.send_str(f"frame {n}")
                if n % 500 == 499:  # a steady stream, not one burst that is over before anyone asks
                    await asyncio.sleep(0.01)

        flooding = asyncio.create_task(flood())
        # The instance serves everybody else meanwhile: health checks are answered while the
        # flood is still being read, not after it (a server that read the flood without yielding
        # would answer none before it ended). How fast is the benchmarks' business.
        slowest = 0.0
        answered_during_flood = 0
        while not flooding.done():
            asked = time.monotonic()
            response = await core.get("/healthz")
            assert response.status == 200
            slowest = max(slowest, time.monotonic() - asked)
            answered_during_flood += not flooding.done()
            await asyncio.sleep(0.05)
        await flooding
        elapsed = time.monotonic() - started
        # Still open and still streaming: an event pushed now arrives.
        await push(publisher, application_id, 1, size=10)
        message = await ws.receive(timeout=10)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        assert message.json()["type"] == "progress"
        grown = rss_bytes() - before
    print(
        f"flood: {frames} frames in {elapsed:.2f}s, {answered_during_flood} health checks answered meanwhile "
        f"(slowest {slowest * 1000:.0f} ms), RSS +{grown >> 10} KiB"
    )
    assert answered_during_flood >= 3
    # 30,000 frames are 450 KB on the wire; a server that kept them would hold far more than this.
    assert grown < 16 * 1024 * 1024


# --- a client that never reads ---------------------------------------------------------------------


class SilentReader:
    """A WebSocket client on a raw socket with a tiny receive buffer that never reads past the
    handshake; it can keep sending masked frames, so the server hears from it all along."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    async def connect(cls, port: int, path: str) -> SilentReader:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        )
        await asyncio.to_thread(sock.sendall, request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += await asyncio.to_thread(sock.recv, 1)  # byte by byte: not one byte past the handshake
        assert head.startswith(b"HTTP/1.1 101"), head
        sock.setblocking(False)
        return cls(sock)

    def send_text(self, text: str) -> bool:
        """One masked text frame; False once the server has dropped the connection."""
        payload = text.encode()
        mask = os.urandom(4)
        frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        try:
            self._sock.send(frame)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        return True

    def close(self) -> None:
        self._sock.close()


async def test_a_client_that_never_reads_is_dropped_and_what_it_is_owed_stays_bounded(
    cores: tuple[Client, Client], settings: Settings, publisher: ConfirmingPublisher, short_send_timeout: None
) -> None:
    core = cores[0]
    hub, sockets = core.app[HUB], core.app[SOCKETS]
    application_id, token = await open_application(settings)
    open_before = len(sockets)
    client = await SilentReader.connect(core.port, offers_path(application_id, token))
    try:
        assert await eventually(lambda: _async(hub.subscriber_count(application_id) == 1), 5)
        # 12 MB of events: far more than the socket buffers on both ends hold.
        pushing = asyncio.create_task(push(publisher, application_id, 1500, size=8192))
        held_most = buffered_most = 0
        started = time.monotonic()
        dropped_after: float | None = None
        while time.monotonic() - started < 30:
            # Talking all along: neither the idle timeout nor a missing pong may be what ends it.
            alive = client.send_text("still here")
            # What the server holds for this socket: its subscription's events and its transport's buffer.
            subscriptions = list(hub._subscriptions.get(application_id, ()))
            held_most = max([held_most, *(len(s.pending) for s in subscriptions)])
            transports = [t for ws, t in sockets._sockets.items() if t is not None and not ws.closed]
            buffered_most = max([buffered_most, *(t.get_write_buffer_size() for t in transports)])  # type: ignore[attr-defined]
            if not subscriptions:
                dropped_after = time.monotonic() - started
                break
            if not alive:
                break
            await asyncio.sleep(0.1)
        await pushing
    finally:
        client.close()
    print(
        f"silent reader: dropped after {dropped_after}s; at most {held_most} events pending, "
        f"{buffered_most >> 10} KiB in the transport's buffer"
    )
    assert dropped_after is not None, "a client that does not read is held open forever"
    assert dropped_after < SEND_TIMEOUT_S + 10
    assert held_most <= 1024  # the subscription's own bound (Subscription.max_pending)
    assert buffered_most <= 512 * 1024  # aiohttp waits for a drain past its 64 KiB writer limit
    assert await eventually(lambda: _async(len(sockets) == open_before), 5)


async def _async(value: bool) -> bool:
    return value


# --- many sockets, two instances ---------------------------------------------------------------------


async def test_each_instance_caps_the_sockets_of_one_application_on_its_own(
    cores: tuple[Client, Client], settings: Settings
) -> None:
    application_id, token = await open_application(settings)
    path = offers_path(application_id, token)
    held: list[aiohttp.ClientWebSocketResponse] = []
    try:
        for core in cores:
            held += [await core.ws_connect(path) for _ in range(MAX_SOCKETS)]
        assert [core.app[HUB].subscriber_count(application_id) for core in cores] == [MAX_SOCKETS, MAX_SOCKETS]
        for core in cores:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await core.ws_connect(path)
            assert refused.value.status == 429
            response = await core.get(path, headers=UPGRADE_HEADERS)
            assert response.status == 429
            assert int(response.headers["Retry-After"]) >= 1
            assert (await response.json())["error"]["code"] == "too_many_streams"
        # A socket closed on the first instance frees a place there, and only there.
        await held.pop(0).close()
        assert await eventually(lambda: _async(cores[0].app[HUB].subscriber_count(application_id) < MAX_SOCKETS), 5)
        held.append(await cores[0].ws_connect(path))
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await cores[1].ws_connect(path)
        assert refused.value.status == 429
    finally:
        await asyncio.gather(*(ws.close() for ws in held))


async def test_another_application_s_token_is_404_before_the_upgrade_on_every_instance(
    cores: tuple[Client, Client], settings: Settings
) -> None:
    application_id, _ = await open_application(settings)
    _, other_token = await open_application(settings)
    for core in cores:
        response = await core.get(offers_path(application_id, other_token), headers=UPGRADE_HEADERS)
        assert response.status == 404
        assert "Upgrade" not in response.headers
        assert (await response.json())["error"]["code"] == "not_found"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await core.ws_connect(offers_path(application_id, other_token))
        assert refused.value.status == 404
        assert core.app[HUB].subscriber_count(application_id) == 0
