"""Request schema of ``POST /api/v1/applications``: strict parsing, normalisation, every bad field.

``parse_application(data, today=moscow_today())`` is the only entry point for
untrusted bodies. It returns a frozen :class:`ApplicationIn` or raises
:class:`ApplicationInvalid` listing every bad field once, with dotted paths
(``drivers.0.birth_date``); it raises nothing else, whatever ``data`` is.

Validation runs in two passes over the same body:

1. pydantic (strict types, unknown fields forbidden) checks each field on its
   own, including the rules that need only the field and ``today``;
2. rules between fields run on every field that passed pass 1, so one answer
   lists field errors and cross-field errors together. A rule whose inputs are
   missing or invalid is skipped: its inputs are already reported.

``ApplicationIn.model_validate(payload)`` without ``context={"today": ...}``
checks formats only (no rule relative to today, no cross-field rule); use it to
load a payload that was accepted earlier, never for a new request.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from shared.intake.schema.errors import (
    ApplicationInvalid,
    FieldError,
    Loc,
    body_order,
    dotted_path,
    error_location,
    error_message,
)
from shared.intake.schema.fields import MAX_DRIVERS
from shared.intake.schema.models import (
    ApplicationIn,
    Driver,
    License,
    Owner,
    Passport,
    Period,
    Registration,
    Vehicle,
    VehicleDocument,
)
from shared.intake.schema.rules import CheckedBody, driver_rules, owner_rules, vehicle_rules

__all__ = [
    "MAX_DRIVERS",
    "ApplicationIn",
    "ApplicationInvalid",
    "Driver",
    "FieldError",
    "License",
    "Owner",
    "Passport",
    "Period",
    "Registration",
    "Vehicle",
    "VehicleDocument",
    "parse_application",
]


def parse_application(data: object, *, today: date) -> ApplicationIn:
    """Validate and normalise a decoded JSON body; ``today`` is the Moscow date (``moscow_today()``).

    Raises ApplicationInvalid, and only that, for any input that breaks the contract.
    """
    if isinstance(today, datetime):
        today = today.date()
    if not isinstance(today, date):
        # A caller's bug, not a bad body: without today every date window would be skipped.
        raise TypeError("today must be a date (moscow_today())")
    if not isinstance(data, dict):
        raise ApplicationInvalid([FieldError(path="", message="must be a JSON object")])
    try:
        return _parse(data, today)
    except ApplicationInvalid:
        raise
    except Exception as exc:  # the contract: nothing but ApplicationInvalid leaves this function
        raise ApplicationInvalid([FieldError(path="", message="could not be validated")]) from exc


def _parse(data: dict[str, Any], today: date) -> ApplicationIn:
    model: ApplicationIn | None = None
    errors: list[tuple[Loc, str]] = []
    try:
        model = ApplicationIn.model_validate(data, context={"today": today})
    except ValidationError as exc:
        details = exc.errors(include_url=False, include_input=False)
        errors = [(error_location(error), error_message(error)) for error in details]
    checked = CheckedBody(data, {loc for loc, _ in errors})
    errors += vehicle_rules(checked) + owner_rules(checked) + driver_rules(checked)
    if errors:
        # One message per field: the first wins, so a field's own error beats a rule between fields.
        first: dict[Loc, str] = {}
        for loc, message in errors:
            first.setdefault(loc, message)
        ordered = sorted(first.items(), key=lambda item: body_order(item[0]))
        raise ApplicationInvalid([FieldError(path=dotted_path(loc), message=message) for loc, message in ordered])
    assert model is not None
    return model
