"""Who may read an application: the holder of its access token, or the partner that created it.

A token is an HMAC of the application id under ``OSAGO_TOKEN_SECRET``: nothing secret
is stored in the database, any instance can verify it, and an idempotent replay can
hand the same token out again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

from shared.models import Application


def issue_access_token(application_id: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"application-access:{application_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def access_token_valid(application_id: str, token: str | None, secret: str) -> bool:
    if not token:
        return False
    return hmac.compare_digest(issue_access_token(application_id, secret), token)


def parse_application_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


async def readable_application_id(
    raw_id: str, *, access_token: str | None, partner_id: str | None, token_secret: str
) -> uuid.UUID | None:
    """The application's id if the caller may read it; None for unknown ids and strangers alike.

    Reads one column, not the row: an offers socket keeps only the id for its whole life.
    """
    application_id = parse_application_id(raw_id)
    if application_id is None or not (access_token or partner_id):
        return None
    token_opens_it = access_token_valid(str(application_id), access_token, token_secret)
    if not token_opens_it and not partner_id:
        return None  # answered without touching the database
    owners = await Application.filter(id=application_id).values_list("partner_id", flat=True)
    if not owners:
        return None
    if token_opens_it or (partner_id and str(owners[0]) == partner_id):
        return application_id
    return None


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization.startswith("Bearer "):
        return authorization[len("Bearer ") :].strip() or None
    return None
