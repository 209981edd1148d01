"""Access tokens for reading one application.

A token is an HMAC of the application id under ``OSAGO_TOKEN_SECRET``: nothing secret
is stored in the database, any instance can verify it, and an idempotent replay can
hand the same token out again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def issue_access_token(application_id: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"application-access:{application_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def access_token_valid(application_id: str, token: str | None, secret: str) -> bool:
    if not token:
        return False
    return hmac.compare_digest(issue_access_token(application_id, secret), token)


def hash_api_key(api_key: str) -> str:
    """API keys are random and long, so a plain SHA-256 is enough to keep them unusable at rest."""
    return hashlib.sha256(api_key.encode()).hexdigest()
