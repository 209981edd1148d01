"""Who may read an application: its access token, or the partner that created it."""

from __future__ import annotations

from shared.access_tokens import access_token_valid
from shared.application_view import parse_application_id
from shared.models import Application


async def readable_application(
    raw_id: str, *, access_token: str | None, partner_id: str | None, token_secret: str
) -> Application | None:
    """The application if the caller may read it; None for unknown ids and strangers alike."""
    application_id = parse_application_id(raw_id)
    if application_id is None or not (access_token or partner_id):
        return None
    if access_token and not partner_id and not access_token_valid(str(application_id), access_token, token_secret):
        return None  # answered without touching the database
    application = await Application.get_or_none(id=application_id)
    if application is None:
        return None
    if access_token_valid(str(application_id), access_token, token_secret):
        return application
    if partner_id and str(application.partner_id) == partner_id:
        return application
    return None


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization.startswith("Bearer "):
        return authorization[len("Bearer ") :].strip() or None
    return None
