"""Signed payment callbacks: the one place both the provider (sandbox) and the system sign and check.

The provider POSTs a callback with the header

    X-Payment-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" under the secret>

(the scheme of the large card processors). The timestamp is inside the MAC, so an old callback
cannot be replayed with a fresh ``t``; a receiver refuses one whose ``t`` is further than
``tolerance_s`` from its own clock. Within the tolerance a replay still verifies: the receiver
deduplicates by the body's ``event_id`` (a retried callback carries the same ``event_id`` and a
new signature). Several ``v1=`` entries may appear (a provider rotating its secret); one match
is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import re

HEADER = "X-Payment-Signature"
DEFAULT_TOLERANCE_S = 300.0
# Bounds on what is parsed: a header is a few entries, never a megabyte.
MAX_HEADER_LENGTH = 1024
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class SignatureError(ValueError):
    """A callback's signature does not hold; ``code`` is machine-readable."""

    code = "bad_signature"


class MalformedSignature(SignatureError):
    code = "malformed_signature"


class ForgedSignature(SignatureError):
    """The MAC does not match: another secret, or a body changed after signing."""

    code = "forged_signature"


class StaleSignature(SignatureError):
    """Signed too long ago (a replay) or too far in the future (a wrong clock)."""

    code = "stale_signature"


def _mac(body: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The header value for ``body`` signed at ``timestamp`` (unix seconds)."""
    if not secret:
        raise ValueError("an empty secret signs nothing")
    return f"t={timestamp},v1={_mac(body, secret, timestamp)}"


def _parse(header: str) -> tuple[int, list[str]]:
    if len(header) > MAX_HEADER_LENGTH:
        raise MalformedSignature("signature header too long")
    timestamp: int | None = None
    digests: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise MalformedSignature("signature header entries are key=value")
        if key == "t":
            if timestamp is not None or not _TIMESTAMP.fullmatch(value):
                raise MalformedSignature("t must appear once, as unix seconds")
            timestamp = int(value)
        elif key == "v1":
            if not _HEX_DIGEST.fullmatch(value):
                raise MalformedSignature("v1 must be 64 lowercase hex digits")
            digests.append(value)
        # Other keys (future schemes) are ignored, as the scheme allows.
    if timestamp is None:
        raise MalformedSignature("no t= in the signature header")
    if not digests:
        raise MalformedSignature("no v1= in the signature header")
    return timestamp, digests


def verify(body: bytes, header: str | None, secret: str, now: float, tolerance_s: float = DEFAULT_TOLERANCE_S) -> int:
    """Check ``header`` against the raw ``body``; the signed timestamp, or a ``SignatureError``.

    ``now`` is the receiver's unix time. The MAC is checked before the age, so a forged header
    is reported as forged whatever its timestamp.
    """
    if not secret:
        raise ValueError("an empty secret verifies nothing")
    if header is None or not header.strip():
        raise MalformedSignature(f"no {HEADER} header")
    timestamp, digests = _parse(header)
    expected = _mac(body, secret, timestamp)
    if not any(hmac.compare_digest(expected, digest) for digest in digests):
        raise ForgedSignature("signature does not match the body")
    if abs(now - timestamp) > tolerance_s:
        raise StaleSignature(f"signed {now - timestamp:.0f} s from now; at most {tolerance_s:.0f} s allowed")
    return timestamp
