"""Partner API keys: shown once when created, kept only as a hash."""

from __future__ import annotations

import hashlib
import secrets

API_KEY_HEADER = "X-API-Key"
_KEY_PREFIX = "osk_"
# What new_api_key issues (token_urlsafe(32) is 43 base64url characters); published in the document.
API_KEY_PATTERN = r"^osk_[A-Za-z0-9_-]{43}$"


def new_api_key() -> str:
    return f"{_KEY_PREFIX}{secrets.token_urlsafe(32)}"


def hash_api_key(api_key: str) -> str:
    """API keys are random and long, so a plain SHA-256 is enough to keep them unusable at rest.

    A header byte that is not UTF-8 reaches us as a surrogate escape: hashed as the byte it
    was (it matches no key, so the caller gets the 401 of any wrong key, not a 500).
    """
    return hashlib.sha256(api_key.encode("utf-8", "surrogateescape")).hexdigest()
