"""pydantic's errors as API.md's field errors: dotted paths in the body's order, our messages."""

from __future__ import annotations

from typing import Final, TypedDict

from pydantic import (
    BaseModel,
)
from pydantic_core import ErrorDetails

from shared.intake.schema.fields import RULE_ERROR
from shared.intake.schema.models import (
    FIELD_NAMES,
    MODELS,
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


class FieldError(TypedDict):
    path: str
    message: str


class ApplicationInvalid(Exception):
    """The body breaks the contract; ``fields`` names every bad field once."""

    def __init__(self, fields: list[FieldError]) -> None:
        # Paths only: values are personal data and must not reach logs.
        paths = ", ".join(field["path"] or "<body>" for field in fields)
        super().__init__(f"{len(fields)} invalid field(s): {paths}")
        self.fields = fields


Loc = tuple[str | int, ...]

_MESSAGES: Final = {
    "missing": "is required",
    "extra_forbidden": "is not an allowed field",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
}


def error_location(error: ErrorDetails) -> Loc:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden" and loc:
        # The last element is the client's unknown key: keep it whatever it looks like.
        head, tail = loc[:-1], loc[-1:]
    else:
        head, tail = loc, ()
    # Drop pydantic's internal steps (union members, "function-after[...]") from the path.
    return tuple(part for part in head if isinstance(part, int) or part in FIELD_NAMES) + tail


def error_message(error: ErrorDetails) -> str:
    if error["type"] == RULE_ERROR:
        return error["msg"]
    return _MESSAGES.get(error["type"], "is invalid")


def _path_part(part: str | int) -> str:
    text = str(part)
    if len(text) > 64:
        text = text[:64] + "…"
    # Unknown keys are echoed: keep the answer printable (no CR/LF, no NUL).
    return "".join(char if char.isprintable() else "?" for char in text)


_CHILDREN: Final[dict[type[BaseModel], dict[str, type[BaseModel]]]] = {
    ApplicationIn: {"vehicle": Vehicle, "owner": Owner, "drivers": Driver, "period": Period},
    Vehicle: {"document": VehicleDocument},
    Owner: {"passport": Passport, "registration": Registration},
    Driver: {"license": License},
}
_POSITIONS: Final = {model: {name: i for i, name in enumerate(model.model_fields)} for model in MODELS}


def body_order(loc: Loc) -> tuple[int, ...]:
    """Sort key that lists errors in the order of the body's fields (unknown keys last in their object)."""
    model: type[BaseModel] | None = ApplicationIn
    key: list[int] = []
    for part in loc:
        if isinstance(part, int):
            key.append(part)
            continue
        positions = _POSITIONS.get(model, {}) if model is not None else {}
        key.append(positions.get(part, len(positions)))
        model = _CHILDREN.get(model, {}).get(part) if model is not None else None
    return tuple(key)


def dotted_path(loc: Loc) -> str:
    return ".".join(_path_part(part) for part in loc)
