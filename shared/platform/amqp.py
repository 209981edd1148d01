"""One robust AMQP connection per process, and a publisher that waits for confirms."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection
from aiormq.exceptions import AMQPError, ChannelInvalidStateError

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json"

# What a channel the broker closed (or a connection that dropped) raises at an ack, a
# reject or a consume: the broker has requeued what that channel held.
CHANNEL_GONE: tuple[type[Exception], ...] = (ChannelInvalidStateError, AMQPError, ConnectionError)


# aio-pika raises RuntimeError on a connection it has closed.
_PUBLISH_ERRORS: tuple[type[Exception], ...] = (TimeoutError, RuntimeError, *CHANNEL_GONE)


class PublishFailed(RuntimeError):
    """The broker did not confirm the message in time (down, blocked, or unroutable)."""


def connection_url(amqp_url: str, name: str) -> str:
    """Name the connection (shown in the management UI) and keep heartbeats short."""
    parts = urlsplit(amqp_url)
    query = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair)
    query.setdefault("name", f"{name}@{socket.gethostname()}")
    query.setdefault("heartbeat", "10")
    query.setdefault("reconnect_interval", "1")
    return urlunsplit(parts._replace(query=urlencode(query)))


@asynccontextmanager
async def robust_connection(amqp_url: str, name: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(connection_url(amqp_url, name), timeout=10)
    connection.reconnect_callbacks.add(lambda *_: log.warning("amqp reconnected", extra={"connection": name}))
    connection.close_callbacks.add(lambda *_: log.info("amqp connection closed", extra={"connection": name}))
    try:
        yield connection
    finally:
        await close_within(connection.close, "amqp connection")


# Closing talks to the broker; when it is unreachable, shutdown must not wait for it.
CLOSE_TIMEOUT_S = 3.0


async def close_within(
    close: Callable[[], Awaitable[object]],
    what: str,
    *,
    connection: AbstractRobustConnection | None = None,
    timeout: float = CLOSE_TIMEOUT_S,
) -> None:
    """Run ``close`` unless the broker is out of reach (it dropped our channels already)."""
    if connection is not None and not connection.connected.is_set():
        log.info("closing skipped: broker unreachable", extra={"what": what})
        return
    try:
        async with asyncio.timeout(timeout):
            await close()
    except Exception as exc:  # TimeoutError included: the broker is gone, and so are we
        log.info("closing gave up", extra={"what": what, "error": type(exc).__name__})


class ConfirmingPublisher:
    """Publishes on its own confirm channel; a message counts only once the broker confirms it."""

    def __init__(self, connection: AbstractRobustConnection, channel: AbstractRobustChannel, timeout: float) -> None:
        self._connection = connection
        self._channel = channel
        self._timeout = timeout
        self._exchanges: dict[str, AbstractExchange] = {}

    @classmethod
    async def open(cls, connection: AbstractRobustConnection, timeout: float) -> ConfirmingPublisher:
        # on_return_raises: an unroutable mandatory message (no queue bound) must fail, not vanish.
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return cls(connection, channel, timeout)

    @property
    def channel(self) -> AbstractRobustChannel:
        return self._channel

    def register(self, exchange: AbstractExchange) -> None:
        self._exchanges[exchange.name] = exchange

    async def publish(
        self, exchange_name: str, message: aio_pika.Message, routing_key: str = "", *, mandatory: bool = True
    ) -> None:
        """``mandatory``: a message no queue takes fails (a job must reach a queue); without it the
        broker confirms and drops it (an event nobody listens to is no loss: it is in the database)."""
        exchange = self._exchanges[exchange_name]
        if not self._connection.connected.is_set():
            # A robust connection would hold the publish until it reconnects; callers
            # have an outbox, so they are better served by an immediate failure.
            raise PublishFailed(f"publish to {exchange_name!r} failed: broker unreachable")
        try:
            async with asyncio.timeout(self._timeout):
                await exchange.publish(message, routing_key=routing_key, mandatory=mandatory)
        except _PUBLISH_ERRORS as exc:
            raise PublishFailed(f"publish to {exchange_name!r} failed: {type(exc).__name__}: {exc}") from exc

    async def publish_many(
        self, exchange_name: str, messages: list[tuple[aio_pika.Message, str]], *, mandatory: bool = True
    ) -> list[bool]:
        """Publish concurrently (confirms pipeline); True per message the broker confirmed."""
        results: list[Any] = await asyncio.gather(
            *(self.publish(exchange_name, message, key, mandatory=mandatory) for message, key in messages),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, PublishFailed):
                raise result
        return [not isinstance(result, BaseException) for result in results]
