"""What the three protocol adapters share: reading our application, guarding the HTTP call,
and treating every insurer answer as untrusted input (OWASP API10).
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

import aiohttp

from shared.quoting.outcomes import OfferOutcome

from .base import InsurerTimeout, PermanentInsurerError, TransientInsurerError

# An OSAGO answer is a few hundred bytes; anything this large is a broken or hostile peer.
MAX_ANSWER_BYTES = 256 * 1024
MAX_PREMIUM = Decimal("1000000")  # roubles; the dearest real OSAGO policy is far below this
# An offer valid for longer than this is not a pre-calculation any insurer issues.
MAX_VALIDITY = timedelta(days=90)
COEFFICIENTS: tuple[str, ...] = ("TB", "KT", "KBM", "KVS", "KO", "KM", "KS", "KN")
KOPECK = Decimal("0.01")
# Exact for eight factors whatever decimal context the caller's thread has.
_EXACT = Context(prec=60)

_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
# [0-9], never \d: \d takes any Unicode digit ("٨٦٦٥"), and Decimal() reads those too.
_PREMIUM = re.compile(r"[0-9]{1,7}(\.[0-9]{1,2})?")
_COEFFICIENT = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")
MAX_REASON_CHARS = 300
DEFAULT_DECLINE_REASON = "Страховая компания отказала в расчёте"


# ---------------------------------------------------------------------------------------------
# Our stored application → the facts an insurer asks for
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DriverView:
    birth_date: str
    experience_since: str
    licence: str  # series + number, spaces removed


@dataclass(frozen=True, slots=True)
class ApplicationView:
    """Only the fields insurers price on (data minimisation: no names, no VIN, no plate)."""

    start_date: str
    months: int
    category: str
    make: str
    model: str
    year: int
    power_hp: int
    purpose: str
    region_code: str
    city: str
    unlimited: bool
    owner_passport: str | None  # sent only for unlimited drivers (the owner's KBM)
    drivers: tuple[DriverView, ...]


def _document(doc: Mapping[str, Any]) -> str:
    return "".join((str(doc.get("series", "")) + str(doc["number"])).split())


def view_application(application: Mapping[str, Any]) -> ApplicationView:
    """Read the stored application (API.md POST body, normalised); a missing field is our bug."""
    try:
        vehicle = application["vehicle"]
        owner = application["owner"]
        period = application["period"]
        registration = owner["registration"]
        unlimited = bool(application.get("unlimited_drivers", False))
        return ApplicationView(
            start_date=str(period["start_date"]),
            months=int(period["months"]),
            category=str(vehicle.get("category", "B")),
            make=str(vehicle.get("make", "")),
            model=str(vehicle.get("model", "")),
            year=int(vehicle["year"]),
            power_hp=int(vehicle["power_hp"]),
            purpose=str(vehicle.get("purpose", "personal")),
            region_code=str(registration["region_code"]),
            city=str(registration.get("city", "")),
            unlimited=unlimited,
            owner_passport=_document(owner["passport"]) if unlimited else None,
            drivers=tuple(
                DriverView(
                    birth_date=str(d["birth_date"]),
                    experience_since=str(d.get("experience_since") or d["license"]["issued"]),
                    licence=_document(d["license"]),
                )
                for d in (application.get("drivers") or ())
            ),
        )
    except (KeyError, TypeError, ValueError):
        raise PermanentInsurerError("application is missing a field the insurer needs") from None


# ---------------------------------------------------------------------------------------------
# The call: one budget, transport failures classified
# ---------------------------------------------------------------------------------------------


@asynccontextmanager
async def guarded(timeout: float) -> AsyncIterator[None]:
    """Bound the whole exchange by ``timeout`` and turn transport failures into Transient.

    Our bound running out is an ``InsurerTimeout``; aiohttp's own socket timeouts (TimeoutErrors
    too) firing first are a plain transient failure: the insurer stalled within our bound.
    """
    bound = asyncio.timeout(timeout)
    try:
        async with bound:
            yield
    except TimeoutError:
        if bound.expired():
            raise InsurerTimeout(f"no answer within {timeout:.1f} s") from None
        raise TransientInsurerError("the insurer's connection stalled (socket timeout)") from None
    except aiohttp.ClientPayloadError:
        raise TransientInsurerError("answer cut off mid-body") from None
    except aiohttp.ServerDisconnectedError:
        raise TransientInsurerError("insurer closed the connection") from None
    except (aiohttp.ClientError, OSError):
        raise TransientInsurerError("connection to the insurer failed") from None


async def read_capped(response: aiohttp.ClientResponse) -> bytes:
    """The body, refusing to buffer more than MAX_ANSWER_BYTES (after decompression)."""
    if response.content_length is not None and response.content_length > MAX_ANSWER_BYTES:
        raise PermanentInsurerError("insurer answer is too large")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise PermanentInsurerError("insurer answer is too large")
    return bytes(body)


def check_status(status: int) -> None:
    """Non-2xx statuses: 5xx, 408 and 429 are worth a retry; other 4xx are not."""
    if 200 <= status < 300:
        return
    if status >= 500 or status in (408, 429):
        raise TransientInsurerError(f"insurer answered HTTP {status}")
    raise PermanentInsurerError(f"insurer answered HTTP {status}")


# ---------------------------------------------------------------------------------------------
# Sanity of what came back
# ---------------------------------------------------------------------------------------------


def parse_timestamp(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise PermanentInsurerError("offer validity is not a timestamp") from None
    if moment.tzinfo is None:
        raise PermanentInsurerError("offer validity has no time zone")
    return moment.astimezone(UTC)


def checked_offer(
    premium: Decimal | str,
    coefficients: Mapping[str, str],
    reference: str,
    valid_until: datetime,
    *,
    now: datetime | None = None,
) -> OfferOutcome:
    """An offer only if it is plausible and self-consistent; otherwise PermanentInsurerError."""
    if isinstance(premium, str):
        if not _PREMIUM.fullmatch(premium):
            raise PermanentInsurerError("premium is not a money amount")
        premium = Decimal(premium)
    if not premium.is_finite() or premium <= 0 or premium >= MAX_PREMIUM:
        raise PermanentInsurerError("premium is out of range")
    if premium != premium.quantize(KOPECK):
        raise PermanentInsurerError("premium has fractions of a kopeck")
    if set(coefficients) != set(COEFFICIENTS):
        raise PermanentInsurerError("coefficient breakdown is incomplete or has unknown factors")
    product = Decimal(1)
    try:
        for code in COEFFICIENTS:
            text = coefficients[code]
            if not isinstance(text, str) or not _COEFFICIENT.fullmatch(text):
                raise PermanentInsurerError(f"coefficient {code} is not a decimal number")
            product = _EXACT.multiply(product, Decimal(text))
    except InvalidOperation:
        raise PermanentInsurerError("coefficient breakdown is not numeric") from None
    if product.quantize(KOPECK, rounding=ROUND_HALF_UP) != premium:
        raise PermanentInsurerError("premium does not equal the product of its coefficients")
    if not _REFERENCE.fullmatch(reference):
        raise PermanentInsurerError("insurer reference is malformed")
    now = now or datetime.now(UTC)
    if valid_until <= now:
        raise PermanentInsurerError("offer has already expired")
    if valid_until > now + MAX_VALIDITY:
        raise PermanentInsurerError("offer validity is implausibly long")
    return OfferOutcome(
        premium=premium.quantize(KOPECK),
        coefficients={code: coefficients[code] for code in COEFFICIENTS},
        insurer_reference=reference,
        valid_until=valid_until,
    )


def clean_reason(raw: str | None) -> str:
    """An insurer's refusal text, safe to show: printable, single line, bounded."""
    if not raw:
        return DEFAULT_DECLINE_REASON
    text = "".join(ch if unicodedata.category(ch)[0] not in "CZ" or ch == " " else " " for ch in raw)
    text = " ".join(text.split())[:MAX_REASON_CHARS]
    return text or DEFAULT_DECLINE_REASON
