"""The payment callback signature shared by the provider and the system (shared/payments/signature.py)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from shared.payments.signature import (
    ForgedSignature,
    MalformedSignature,
    SignatureError,
    StaleSignature,
    sign,
    verify,
)

SECRET = "test-secret"
BODY = b'{"event_id":"e-1","status":"paid","amount":"9441.80"}'
NOW = 1_790_000_000


def test_a_signature_verifies_and_has_the_documented_form() -> None:
    header = sign(BODY, SECRET, NOW)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"
    assert verify(BODY, header, SECRET, now=NOW + 10) == NOW


def test_another_secret_is_forged() -> None:
    with pytest.raises(ForgedSignature):
        verify(BODY, sign(BODY, "other-secret", NOW), SECRET, now=NOW)


def test_a_changed_body_is_forged() -> None:
    header = sign(BODY, SECRET, NOW)
    with pytest.raises(ForgedSignature):
        verify(BODY.replace(b"9441.80", b"1.00"), header, SECRET, now=NOW)


def test_a_fresh_timestamp_on_an_old_mac_is_forged() -> None:
    """Replaying an old callback under a new t= does not verify: t is inside the MAC."""
    old = sign(BODY, SECRET, NOW - 3600)
    mac = old.split("v1=")[1]
    with pytest.raises(ForgedSignature):
        verify(BODY, f"t={NOW},v1={mac}", SECRET, now=NOW)


@pytest.mark.parametrize("age_s", [301, 3600, -301])
def test_a_replayed_old_or_future_callback_is_stale(age_s: int) -> None:
    header = sign(BODY, SECRET, NOW - age_s)
    with pytest.raises(StaleSignature):
        verify(BODY, header, SECRET, now=NOW, tolerance_s=300)
    assert verify(BODY, header, SECRET, now=NOW - age_s, tolerance_s=300) == NOW - age_s


def test_one_matching_v1_among_several_is_enough() -> None:
    good = sign(BODY, SECRET, NOW).split("v1=")[1]
    assert verify(BODY, f"t={NOW},v1={'0' * 64},v1={good}", SECRET, now=NOW) == NOW


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "t=abc,v1=" + "0" * 64,
        "v1=" + "0" * 64,
        f"t={NOW}",
        f"t={NOW},v1=XYZ",
        f"t={NOW},v1={'0' * 63}",
        f"t={NOW},t={NOW},v1={'0' * 64}",
        f"t={NOW},v1={'0' * 64}," + "x=" * 600,
    ],
)
def test_a_malformed_header_is_refused(header: str | None) -> None:
    with pytest.raises(MalformedSignature) as caught:
        verify(BODY, header, SECRET, now=NOW)
    assert caught.value.code == "malformed_signature"


def test_every_refusal_is_a_signature_error_with_a_code() -> None:
    for error in (MalformedSignature, ForgedSignature, StaleSignature):
        assert issubclass(error, SignatureError) and error.code != SignatureError.code


def test_an_empty_secret_is_refused_on_both_sides() -> None:
    with pytest.raises(ValueError):
        sign(BODY, "", NOW)
    with pytest.raises(ValueError):
        verify(BODY, sign(BODY, SECRET, NOW), "", now=NOW)


def test_the_callback_secret_is_a_hidden_setting() -> None:
    from shared.platform.settings import Settings, SettingsError

    settings = Settings.from_env({"OSAGO_PAYMENT_CALLBACK_SECRET": "s3cret"})
    assert settings.payment_callback_secret == "s3cret"
    assert settings.redacted()["payment_callback_secret"] == "***"
    assert Settings.from_env({}).payment_callback_secret  # a working local default, as for other secrets
    with pytest.raises(SettingsError, match="OSAGO_PAYMENT_CALLBACK_SECRET"):
        Settings.from_env({"OSAGO_PAYMENT_CALLBACK_SECRET": ""})
