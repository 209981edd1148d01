"""The Idempotency-Key a client may send with a new application: one rule, for the core app
(before it forwards the key) and the aggregator (before it stores it)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from shared.platform.http_api import ApiError

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
# Published as it is in the document; matched with fullmatch (a "$" would let a trailing newline in).
KEY_PATTERN = "^[!-~]{1,255}$"
_KEY = re.compile("[!-~]{1,255}")
KEY_RULE = "must be 1 to 255 printable ASCII characters"


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    """The key, or None; 400 for one outside the rule. A header byte that is not UTF-8 arrives
    as a surrogate escape, which the rule refuses: forwarded, aiohttp's client would drop it
    and two different keys would become one."""
    key = headers.get(IDEMPOTENCY_KEY_HEADER)
    if key is None:
        return None
    if _KEY.fullmatch(key) is None:
        raise ApiError(
            400,
            "bad_idempotency_key",
            f"{IDEMPOTENCY_KEY_HEADER} {KEY_RULE}",
            [{"path": IDEMPOTENCY_KEY_HEADER, "message": KEY_RULE}],
        )
    return key
