"""The rules JSON Schema cannot say: the only refusals of a body the published schema allows.

Each is a date relative to Moscow's today, a date relative to another field, or a licence
listed twice (``uniqueItems`` compares whole drivers, not their licences). The operation's
description in the OpenAPI document lists them from here, and the agreement tests accept
a 422 of a schema-valid body only when every field it names is refused by one of them.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from shared.intake.schema.errors import FieldError
from shared.intake.schema.fields import EARLIEST_MODEL_YEAR, POLICY_START_MAX_DAYS


class BeyondSchema(NamedTuple):
    rule: str  # as the operation's description states it
    path: re.Pattern[str]  # the field the server names
    message: re.Pattern[str]  # the server's message


def _rule(rule: str, path: str, message: str) -> BeyondSchema:
    return BeyondSchema(rule, re.compile(path), re.compile(message))


_DATES_OF_THE_PAST = (
    r"vehicle\.document\.issued|owner\.birth_date|owner\.passport\.issued"
    r"|drivers\.[0-9]+\.(?:birth_date|license\.issued|experience_since)"
)

RULES: Final = (
    _rule(
        "`period.start_date` is from tomorrow to "
        f"{POLICY_START_MAX_DAYS} days ahead of Moscow's today (GET /api/v1/reference gives `today`)",
        r"period\.start_date",
        r"must be from tomorrow to [0-9]+ days ahead",
    ),
    _rule(
        "issue dates, birth dates and `experience_since` are not after Moscow's today",
        _DATES_OF_THE_PAST,
        r"must not be in the future",
    ),
    _rule(
        f"`vehicle.year` is at most next year (Moscow's today's year + 1; at least {EARLIEST_MODEL_YEAR})",
        r"vehicle\.year",
        r"must be between [0-9]+ and [0-9]+",
    ),
    _rule("the owner is at least 18 years old today", r"owner\.birth_date", r"the owner must be at least 18"),
    _rule(
        "every driver is at least 18 years old on `period.start_date`",
        r"drivers\.[0-9]+\.birth_date",
        r"the driver must be at least 18 years old on the policy start date",
    ),
    _rule(
        "`vehicle.document.issued` is not before 1 January of the year before `vehicle.year`",
        r"vehicle\.document\.issued",
        r"must not be before [0-9]{4}-01-01 \(a year before the model year\)",
    ),
    _rule(
        "`owner.passport.issued` is not before the owner's 14th birthday",
        r"owner\.passport\.issued",
        r"must not be before the owner's 14th birthday",
    ),
    _rule(
        "a driver's `license.issued` and `experience_since` are not before the driver's 16th birthday",
        r"drivers\.[0-9]+\.(?:license\.issued|experience_since)",
        r"must not be before the driver's 16th birthday",
    ),
    _rule(
        "no licence (series and number) is listed for two drivers",
        r"drivers\.[0-9]+\.license",
        r"is the same licence as drivers\.[0-9]+\.license",
    ),
)


def beyond_schema(field: FieldError) -> bool:
    """Whether this refusal is one of the rules the document states in words only."""
    return any(
        rule.path.fullmatch(field["path"]) is not None and rule.message.match(field["message"]) is not None
        for rule in RULES
    )
