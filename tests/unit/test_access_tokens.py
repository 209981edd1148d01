"""The access token's format: ``<expiry>.<base64url HMAC of "application-access:<id>:<expiry>">``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.intake.access import (
    TokenKeys,
    access_token_for,
    access_token_valid,
    bearer_token,
    issue_access_token,
    legacy_token_signed,
)
from shared.platform.settings import Settings

APPLICATION = str(uuid.uuid4())
NOW = 1_800_000_000.0
KEYS = TokenKeys("current-secret", "previous-secret", ttl_s=3600.0)


def legacy_token(application_id: str, secret: str) -> str:
    """What the release before expiries issued: the bare HMAC of the id."""
    digest = hmac.new(secret.encode(), f"application-access:{application_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_the_token_is_its_expiry_and_the_hmac_of_id_and_expiry() -> None:
    token = issue_access_token(APPLICATION, "current-secret", 1_800_003_600)
    expiry, mac = token.split(".")
    assert expiry == "1800003600"
    expected = hmac.new(b"current-secret", f"application-access:{APPLICATION}:1800003600".encode(), hashlib.sha256)
    assert mac == base64.urlsafe_b64encode(expected.digest()).rstrip(b"=").decode()
    assert len(mac) == 43 and token.isascii()


def test_the_expiry_is_the_deadline_plus_the_ttl_so_a_replay_gets_the_same_token() -> None:
    deadline = datetime.fromtimestamp(NOW, UTC) + timedelta(microseconds=654321)
    token = access_token_for(APPLICATION, deadline, KEYS)
    assert token.startswith(f"{int(NOW) + 3600}.")
    # The same stored deadline (read back from the database) gives the same token.
    assert access_token_for(APPLICATION, datetime.fromisoformat(deadline.isoformat()), KEYS) == token
    # Issued under the current secret only.
    assert not access_token_valid(APPLICATION, token, TokenKeys("previous-secret"), now=NOW)
    assert access_token_valid(APPLICATION, token, TokenKeys("current-secret"), now=NOW)


def test_a_token_opens_until_its_expiry_and_not_after() -> None:
    token = issue_access_token(APPLICATION, "current-secret", int(NOW) + 10)
    assert access_token_valid(APPLICATION, token, KEYS, now=NOW)
    assert access_token_valid(APPLICATION, token, KEYS, now=NOW + 9.9)
    assert not access_token_valid(APPLICATION, token, KEYS, now=NOW + 10)
    assert not access_token_valid(APPLICATION, token, KEYS, now=NOW + 86400)


def test_a_forged_expiry_opens_nothing() -> None:
    token = issue_access_token(APPLICATION, "current-secret", int(NOW) + 10)
    _, mac = token.split(".")
    for expiry in (int(NOW) + 11, int(NOW) + 10 * 365 * 86400, 999_999_999_999):
        assert not access_token_valid(APPLICATION, f"{expiry}.{mac}", KEYS, now=NOW), expiry
    # One spelling per token: leading zeros, signs, spaces or padding are not the same token.
    for spelling in (f"0{token}", f"+{token}", f" {token}", f"{token}=", f"{token}\n", token.replace(".", ":")):
        assert not access_token_valid(APPLICATION, spelling, KEYS, now=NOW), spelling


def test_previous_secret_is_accepted_only_while_configured() -> None:
    token = issue_access_token(APPLICATION, "previous-secret", int(NOW) + 10)
    assert access_token_valid(APPLICATION, token, KEYS, now=NOW)
    assert not access_token_valid(APPLICATION, token, TokenKeys("current-secret", ttl_s=3600.0), now=NOW)
    assert not access_token_valid(APPLICATION, token, TokenKeys("someone-else", "other", ttl_s=3600.0), now=NOW)


def test_another_application_or_secret_or_garbage_opens_nothing() -> None:
    token = issue_access_token(APPLICATION, "current-secret", int(NOW) + 10)
    assert not access_token_valid(str(uuid.uuid4()), token, KEYS, now=NOW)
    assert not access_token_valid(APPLICATION, token, TokenKeys("wrong"), now=NOW)
    for garbage in (None, "", ".", "1.", ".abc", "not-a-token", "x" * 43, "т", "1.т", "\udcff", "1." + "т" * 43):
        assert not access_token_valid(APPLICATION, garbage, KEYS, now=NOW), garbage


@pytest.mark.parametrize("secret", ["current-secret", "previous-secret"])
def test_legacy_tokens_are_recognised_under_either_secret(secret: str) -> None:
    token = legacy_token(APPLICATION, secret)
    # Never valid as a token with an expiry; recognised as signed by the legacy check, which
    # readable_application_id follows with the application's deadline + TTL.
    assert not access_token_valid(APPLICATION, token, KEYS, now=NOW)
    assert legacy_token_signed(APPLICATION, token, KEYS)
    assert not legacy_token_signed(str(uuid.uuid4()), token, KEYS)
    assert not legacy_token_signed(APPLICATION, token, TokenKeys("other"))
    assert not legacy_token_signed(APPLICATION, "т" * 43, KEYS)


def test_bearer_token_is_printable_ascii_or_none() -> None:
    assert bearer_token("Bearer 123.abc") == "123.abc"
    assert bearer_token("Bearer  123.abc ") == "123.abc"
    for header in (None, "", "Bearer ", "Basic abc", "bearer abc", "Bearer т", "Bearer \udcff", "Bearer a\x00b"):
        assert bearer_token(header) is None, header


def test_keys_come_from_the_settings() -> None:
    settings = Settings.from_env(
        {
            "OSAGO_TOKEN_SECRET": "new",
            "OSAGO_TOKEN_PREVIOUS_SECRET": "old",
            "OSAGO_ACCESS_TOKEN_TTL_S": "60",
        }
    )
    assert TokenKeys.of(settings) == TokenKeys("new", "old", 60.0)
    assert TokenKeys.of(Settings.from_env({})).accepted() == ("local-dev-token-secret",)
    assert TokenKeys.of(Settings.from_env({})).ttl_s == 7 * 24 * 3600
    assert "old" not in str(settings.redacted())
