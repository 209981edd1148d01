"""Who may read an application: the holder of its access token, or the partner that created it.

A token is ``<expiry>.<mac>``: ``expiry`` the moment it stops opening the application, in
whole seconds since the epoch, and ``mac`` the unpadded base64url HMAC-SHA256 of
``application-access:<application id>:<expiry>`` under ``OSAGO_TOKEN_SECRET``. Nothing
secret is stored in the database and any instance can verify a token without reading it.
The expiry is the application's deadline + ``OSAGO_ACCESS_TOKEN_TTL_S`` (the time to read
the offers, order and get the policy), so a token is a function of the stored application:
an idempotent replay hands out the same token again.

Rotation: tokens are issued under ``OSAGO_TOKEN_SECRET`` and accepted under it or under
``OSAGO_TOKEN_PREVIOUS_SECRET`` (optional), so a new secret logs nobody out; once every
token of the previous one has expired (at most the TTL after the last application made
under it), the previous secret is removed and its tokens open nothing.

Tokens of the release before expiries (the bare HMAC of ``application-access:<id>``) are
accepted under either secret for as long as a token issued today for that application
would be: until its deadline + the TTL, read from the database. Every such application was
created before the upgrade, so all of them are refused from the upgrade + the TTL on; the
legacy branch can be removed in the release after that.

Every token we issue is printable ASCII; anything else (a Cyrillic letter, a byte that is
no UTF-8) is simply not a token: the same 404 as a wrong one, never an exception.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from shared.models import Application
from shared.platform.settings import Settings

# The expiry is canonical (no leading zero, at most 12 digits), so a token has one spelling.
_MAC = r"[A-Za-z0-9_-]{43}"
_TOKEN = re.compile(rf"([1-9][0-9]{{0,11}})\.({_MAC})")
_LEGACY_TOKEN = re.compile(_MAC)
# Every spelling a token of ours has (the legacy one included), as the document publishes it.
ACCESS_TOKEN_PATTERN = rf"^(?:[1-9][0-9]{{0,11}}\.)?{_MAC}$"


@dataclass(frozen=True, slots=True)
class TokenKeys:
    """What issues and checks access tokens: the secrets and the lifetime after the deadline."""

    secret: str
    previous_secret: str = ""
    ttl_s: float = 7 * 24 * 3600.0

    @classmethod
    def of(cls, settings: Settings) -> TokenKeys:
        return cls(settings.token_secret, settings.token_previous_secret, settings.access_token_ttl_s)

    def accepted(self) -> tuple[str, ...]:
        return (self.secret, self.previous_secret) if self.previous_secret else (self.secret,)

    def expiry(self, deadline: datetime) -> int:
        """When a token of an application with this deadline stops opening it (epoch seconds)."""
        return int(deadline.timestamp() + self.ttl_s)


def _mac(secret: str, message: str) -> bytes:
    digest = hmac.new(secret.encode("utf-8", "surrogateescape"), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=")


def issue_access_token(application_id: str, secret: str, expires_at: int) -> str:
    return f"{expires_at}.{_mac(secret, f'application-access:{application_id}:{expires_at}').decode()}"


def access_token_for(application_id: str, deadline: datetime, keys: TokenKeys) -> str:
    """The token handed out with an application: under the current secret, expiring TTL after its deadline."""
    return issue_access_token(application_id, keys.secret, keys.expiry(deadline))


def _any_secret_signed(keys: TokenKeys, message: str, given: str) -> bool:
    # Every accepted secret is tried (no early exit); ``given`` is ASCII (matched above).
    opened = False
    for secret in keys.accepted():
        opened |= hmac.compare_digest(_mac(secret, message), given.encode())
    return opened


def access_token_valid(application_id: str, token: str | None, keys: TokenKeys, *, now: float | None = None) -> bool:
    """A token of this application, signed under an accepted secret, not expired."""
    match = _TOKEN.fullmatch(token) if token else None
    if match is None:
        return False
    expires_at = int(match[1])
    if expires_at <= (time.time() if now is None else now):
        return False
    return _any_secret_signed(keys, f"application-access:{application_id}:{expires_at}", match[2])


def legacy_token_signed(application_id: str, token: str | None, keys: TokenKeys) -> bool:
    """A token of the release before expiries (no expiry in it): its caller checks the deadline."""
    if not token or _LEGACY_TOKEN.fullmatch(token) is None:
        return False
    return _any_secret_signed(keys, f"application-access:{application_id}", token)


def parse_application_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


async def readable_application_id(
    raw_id: str,
    *,
    access_token: str | None,
    partner_id: str | None,
    token_keys: TokenKeys,
    connection: BaseDBAsyncClient | None = None,
) -> uuid.UUID | None:
    """The application's id if the caller may read it; None for unknown ids and strangers alike.

    Reads two columns, not the row: an offers socket keeps only the id for its whole life.
    ``connection``: the replica for a lag-tolerant read (None: the primary).
    """
    application_id = parse_application_id(raw_id)
    if application_id is None or not (access_token or partner_id):
        return None
    token_opens_it = access_token_valid(str(application_id), access_token, token_keys)
    legacy = not token_opens_it and legacy_token_signed(str(application_id), access_token, token_keys)
    if not (token_opens_it or legacy or partner_id):
        return None  # answered without touching the database
    rows = await Application.filter(id=application_id).using_db(connection).values_list("partner_id", "deadline")
    if not rows:
        return None
    owner, deadline = rows[0]
    if legacy:
        token_opens_it = token_keys.expiry(deadline) > time.time()
    if token_opens_it or (partner_id and str(owner) == partner_id):
        return application_id
    return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None when there is none.

    Only printable ASCII can be a token of ours: anything else is no token at all (a header
    that is no UTF-8 arrives with surrogate escapes, which could not even be sent on).
    """
    if authorization and authorization.startswith("Bearer "):
        token = authorization[len("Bearer ") :].strip()
        if token and token.isascii() and token.isprintable():
            return token
    return None
