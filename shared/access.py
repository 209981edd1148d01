"""Who may read an application: its access token, or the partner that created it."""

from __future__ import annotations

import uuid

from shared.access_tokens import access_token_valid
from shared.application_view import parse_application_id
from shared.models import Application


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
