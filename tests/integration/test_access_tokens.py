"""Access tokens through the real in-process apps, on the real database and broker.

The aggregator (the ``aggregator`` fixture) and a core app in front of it run in this
process; a token that cannot be valid, however it is spelled, is a 404 ``not_found`` like
any wrong token, never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from aggregator_api.typedefs import SETTINGS
from core_app.app import create_app as create_core_app
from shared.intake.access import TokenKeys, access_token_for, issue_access_token
from shared.platform.clock import utc_now
from tests.integration.conftest import SERVICE_TOKEN
from tests.support.in_process import in_process
from tests.support.infrastructure import RunInfrastructure
from tests.support.samples import sample_application
from tests.support.stored import store_bare_application

Client = TestClient[web.Request, web.Application]

AUTH = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
UPGRADE_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}
# "т" (Cyrillic), percent-encoded as a browser or curl puts it in a query string; and a byte
# that is no UTF-8 at all (the server reads it as U+FFFD in a query, as a lone surrogate in a header).
NON_ASCII_QUERY_TOKENS = ("%D1%82", "%FF", "abc%D1%82def", "1.%D1%82")
NON_ASCII_HEADER_TOKENS = ("т", "ключ-доступа", "1.т")


@pytest.fixture(scope="module")
async def core(infrastructure: RunInfrastructure, aggregator: TestClient) -> AsyncIterator[Client]:
    """A core app forwarding to the in-process aggregator (same token secret)."""
    settings = infrastructure.settings(
        aggregator_url=str(aggregator.make_url("")).rstrip("/"),
        service_token=SERVICE_TOKEN,
        browser_rps=1000.0,
    )
    async with in_process(create_core_app(settings)) as client:
        yield client


async def created(aggregator: TestClient) -> dict[str, Any]:
    response = await aggregator.post("/api/v1/applications", json=sample_application(), headers=AUTH)
    assert response.status == 201
    body: dict[str, Any] = await response.json()
    return body


async def assert_not_found(response: Any, what: str) -> None:
    assert response.status == 404, (what, response.status, await response.text())
    assert (await response.json())["error"]["code"] == "not_found", what


async def raw_request(client: TestClient, head: bytes) -> tuple[int, bytes]:
    """One request written byte for byte (headers that are not UTF-8), the status and body."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(head)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split(b" ", 2)[1]), rest.partition(b"\r\n\r\n")[2]


# --- item 1: a token that is not ASCII ------------------------------------------------------------


async def test_non_ascii_token_on_the_offers_socket_is_404(aggregator: TestClient, core: Client) -> None:
    application = await created(aggregator)
    offers = application["links"]["offers"]
    for token in NON_ASCII_QUERY_TOKENS:
        await assert_not_found(await core.get(f"{offers}?token={token}", headers=UPGRADE_HEADERS), f"core {token}")
        await assert_not_found(
            await aggregator.get(f"{offers}?token={token}", headers={**UPGRADE_HEADERS, **AUTH}),
            f"aggregator {token}",
        )
    # The right token still opens it, on both.
    async with core.ws_connect(f"{offers}?token={application['access_token']}") as ws:
        assert not ws.closed


async def test_non_ascii_bearer_token_on_get_is_404(aggregator: TestClient, core: Client) -> None:
    application = await created(aggregator)
    path = application["links"]["self"]
    for token in NON_ASCII_HEADER_TOKENS:
        await assert_not_found(await core.get(path, headers={"Authorization": f"Bearer {token}"}), f"core {token}")
        await assert_not_found(
            await aggregator.get(path, headers={**AUTH, "X-Osago-Access-Token": token}), f"aggregator {token}"
        )
        await assert_not_found(
            await core.get(
                f"{application['links']['offers']}", headers={**UPGRADE_HEADERS, "Authorization": f"Bearer {token}"}
            ),
            f"core socket bearer {token}",
        )
    response = await core.get(path, headers={"Authorization": f"Bearer {application['access_token']}"})
    assert response.status == 200


async def test_access_token_bytes_that_are_not_utf8_are_404(aggregator: TestClient, core: Client) -> None:
    application = await created(aggregator)
    path = application["links"]["self"].encode()
    # An access token that is no UTF-8, on the core app (bearer) and on the aggregator (its header).
    status, body = await raw_request(
        core,
        b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \xff\xd1\x82\r\nConnection: close\r\n\r\n",
    )
    assert status == 404, body
    status, body = await raw_request(
        aggregator,
        b"GET "
        + path
        + b" HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
        + SERVICE_TOKEN.encode()
        + b"\r\nX-Osago-Access-Token: \xff\r\nConnection: close\r\n\r\n",
    )
    assert status == 404, body


async def test_service_token_that_is_not_ascii_is_401_not_500(aggregator: TestClient) -> None:
    """The aggregator's service token comparison: any wrong token, however spelled, is its 401."""
    application = await created(aggregator)
    path = application["links"]["self"].encode()
    status, body = await raw_request(
        aggregator, b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \xff\r\nConnection: close\r\n\r\n"
    )
    assert status == 401, body
    status, body = await raw_request(
        aggregator,
        b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \xd1\x82\r\nConnection: close\r\n\r\n",
    )
    assert status == 401, body


# --- item 2: tokens expire, and the secret can be rotated ------------------------------------------


def token_parts(token: str) -> tuple[int, str]:
    expiry, mac = token.split(".")
    return int(expiry), mac


def legacy_token(application_id: str, secret: str) -> str:
    """A token of the release before expiries: the bare HMAC of the id."""
    digest = hmac.new(secret.encode(), f"application-access:{application_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def opens(client: TestClient, application_id: str, token: str, *, service: bool) -> tuple[int, int]:
    """The GET status and the offers socket's upgrade status (101 when it opens) for this token."""
    path = f"/api/v1/applications/{application_id}"
    if service:  # the aggregator: the token in the core app's header, the service token
        get = await client.get(path, headers={**AUTH, "X-Osago-Access-Token": token})
        socket_headers = {**UPGRADE_HEADERS, **AUTH}
    else:
        get = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        socket_headers = UPGRADE_HEADERS
    socket = await client.get(f"{path}/offers?token={token}", headers=socket_headers)
    statuses = get.status, socket.status
    socket.close()
    return statuses


async def test_the_token_expires_the_ttl_after_the_deadline(
    aggregator: TestClient, infrastructure: RunInfrastructure
) -> None:
    application = await created(aggregator)
    expiry, _ = token_parts(application["access_token"])
    deadline = datetime.fromisoformat(application["deadline"].replace("Z", "+00:00"))
    # The body's deadline has milliseconds; the token's expiry whole seconds of the stored one.
    assert abs(expiry - (deadline.timestamp() + infrastructure.settings().access_token_ttl_s)) <= 1
    assert expiry - time.time() > 7 * 24 * 3600 - 60


async def test_an_expired_token_is_404_for_get_and_socket(aggregator: TestClient, core: Client) -> None:
    application = await created(aggregator)
    application_id = application["id"]
    secret = TokenKeys.of(aggregator.app[SETTINGS]).secret
    assert await opens(aggregator, application_id, application["access_token"], service=True) == (200, 101)
    assert await opens(core, application_id, application["access_token"], service=False) == (200, 101)
    # Signed as the server signs, with an expiry just past.
    expired = issue_access_token(application_id, secret, int(time.time()) - 1)
    assert await opens(aggregator, application_id, expired, service=True) == (404, 404)
    assert await opens(core, application_id, expired, service=False) == (404, 404)
    # And one the server issued for an application whose deadline + TTL has passed.
    old_deadline = utc_now() - timedelta(days=8)
    old_id = str(await store_bare_application(old_deadline))
    old_token = access_token_for(old_id, old_deadline, TokenKeys.of(aggregator.app[SETTINGS]))
    assert await opens(aggregator, old_id, old_token, service=True) == (404, 404)
    assert await opens(core, old_id, old_token, service=False) == (404, 404)


async def test_a_forged_expiry_is_404(aggregator: TestClient, core: Client) -> None:
    application = await created(aggregator)
    expiry, mac = token_parts(application["access_token"])
    for forged in (f"{expiry + 1}.{mac}", f"{expiry + 365 * 86400}.{mac}", f"{expiry - 1}.{mac}", f"0{expiry}.{mac}"):
        assert await opens(aggregator, application["id"], forged, service=True) == (404, 404), forged
        assert await opens(core, application["id"], forged, service=False) == (404, 404), forged


async def test_a_replay_hands_out_the_same_valid_token(aggregator: TestClient, core: Client) -> None:
    key = {"Idempotency-Key": f"token-{uuid.uuid4()}"}
    first = await aggregator.post("/api/v1/applications", json=sample_application(), headers={**AUTH, **key})
    again = await aggregator.post("/api/v1/applications", json=sample_application(), headers={**AUTH, **key})
    assert (first.status, again.status) == (201, 201)
    token = (await first.json())["access_token"]
    assert (await again.json())["access_token"] == token
    assert await opens(core, (await again.json())["id"], token, service=False) == (200, 101)


async def test_legacy_tokens_open_until_the_deadline_plus_the_ttl(aggregator: TestClient, core: Client) -> None:
    secret = TokenKeys.of(aggregator.app[SETTINGS]).secret
    recent = await created(aggregator)
    assert await opens(aggregator, recent["id"], legacy_token(recent["id"], secret), service=True) == (200, 101)
    assert await opens(core, recent["id"], legacy_token(recent["id"], secret), service=False) == (200, 101)
    assert await opens(core, recent["id"], legacy_token(recent["id"], "another-secret"), service=False) == (404, 404)
    # An application whose deadline + TTL has passed: its legacy token opens nothing.
    old_id = str(await store_bare_application(utc_now() - timedelta(days=8)))
    assert await opens(aggregator, old_id, legacy_token(old_id, secret), service=True) == (404, 404)
    assert await opens(core, old_id, legacy_token(old_id, secret), service=False) == (404, 404)
