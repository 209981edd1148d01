"""Who is calling: a partner (by API key) or a browser (by address), or another service.

The core app establishes it; the aggregator trusts only the core app's service token and
learns the caller from the headers below, which the core app sets and nobody else can.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from shared.platform.http_api import ApiError

CLIENT_SCOPE_HEADER = "X-Osago-Client-Scope"
PARTNER_HEADER = "X-Osago-Partner-Id"
ACCESS_TOKEN_HEADER = "X-Osago-Access-Token"

# A partner's id as the core app writes it (str(uuid)): 36 hyphens matched the old [0-9a-f-]{36}
# and made a 500 when stored (tests/fuzz/).
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_SCOPE_PATTERN = re.compile(rf"^(service|partner:{_UUID}|browser:[0-9A-Za-z.:_-]{{1,64}})$")
# For the aggregator's OpenAPI document.
SCOPE_PATTERN = _SCOPE_PATTERN.pattern
PARTNER_ID_PATTERN = f"^{_UUID}$"
SERVICE_SCOPE = "service"


@dataclass(frozen=True, slots=True)
class Caller:
    # Whose Idempotency-Keys these are: "partner:<id>", "browser:<address>" or "service".
    scope: str
    partner_id: str | None

    @classmethod
    def partner(cls, partner_id: str) -> Caller:
        return cls(f"partner:{partner_id}", partner_id)

    @classmethod
    def browser(cls, address: str) -> Caller:
        return cls(f"browser:{address}", None)

    @property
    def headers(self) -> dict[str, str]:
        """How the aggregator learns who the caller is."""
        headers = {CLIENT_SCOPE_HEADER: self.scope}
        if self.partner_id is not None:
            headers[PARTNER_HEADER] = self.partner_id
        return headers

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Caller:
        """The caller the core app named; 400 for headers it would never send."""
        scope = headers.get(CLIENT_SCOPE_HEADER, SERVICE_SCOPE)
        if not _SCOPE_PATTERN.match(scope):
            raise ApiError(400, "bad_client_scope", f"{CLIENT_SCOPE_HEADER} is malformed")
        partner_id = headers.get(PARTNER_HEADER) or None
        if partner_id is not None and scope != f"partner:{partner_id}":
            raise ApiError(400, "bad_client_scope", f"{PARTNER_HEADER} does not match {CLIENT_SCOPE_HEADER}")
        return cls(scope, partner_id)
