"""The served document and the validator agree: a body the document allows is refused only
for the rules its description states in words (shared.intake.schema.beyond), and for nothing
else; and once those rules hold, it is accepted.

Bodies are drawn from the core app's /openapi.json as schemathesis reads it (as a client
generator would), not from the pydantic models, so the test sees what a partner sees.
"""

from __future__ import annotations

import copy
from datetime import date, timedelta
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.generation import GenerationMode

from shared.intake.schema import ApplicationInvalid, parse_application
from shared.intake.schema.beyond import RULES, beyond_schema
from shared.service.openapi import openapi_document

TODAY = date(2026, 12, 1)

_create = schemathesis.openapi.from_dict(openapi_document("core"))["/api/v1/applications"]["POST"]
schema_valid_cases = _create.as_strategy(generation_mode=GenerationMode.POSITIVE)
# Drawing a whole body from the document costs a tenth of a second or more: 60 a property in
# `make test` (the same ones every run), ten times as many new ones with --fuzz-long.
_LONG = settings.get_current_profile_name() == "osago-long"
_slow = settings(
    max_examples=600 if _LONG else 60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    deadline=None,
)


def refusals(body: Any) -> list[dict[str, str]]:
    try:
        parse_application(body, today=TODAY)
    except ApplicationInvalid as invalid:
        return [dict(field) for field in invalid.fields]
    return []


@_slow
@given(schema_valid_cases)
def test_a_body_the_document_allows_is_refused_only_for_the_rules_it_states_in_words(case: Case) -> None:
    unstated = [field for field in refusals(case.body) if not beyond_schema(field)]  # type: ignore[arg-type]
    assert not unstated, (unstated, case.body)


def within_the_stated_rules(body: dict[str, Any]) -> dict[str, Any]:
    """The same body with every date and the model year moved where the stated rules want them."""
    fixed = copy.deepcopy(body)
    vehicle = fixed["vehicle"]
    vehicle["year"] = min(int(vehicle["year"]), TODAY.year)
    vehicle["document"]["issued"] = date(vehicle["year"], 1, 1).isoformat()
    owner = fixed["owner"]
    owner["birth_date"] = "1970-01-01"
    owner["passport"]["issued"] = "2000-01-01"
    fixed["period"]["start_date"] = (TODAY + timedelta(days=1)).isoformat()
    for index, driver in enumerate(fixed.get("drivers") or []):
        driver["birth_date"] = "1970-01-01"
        driver["license"]["issued"] = driver["experience_since"] = "1990-01-01"
        driver["license"]["number"] = f"{index:06d}"  # one licence per driver
    return fixed


@_slow
@given(schema_valid_cases)
def test_a_body_the_document_allows_is_accepted_once_the_stated_rules_hold(case: Case) -> None:
    assert refusals(within_the_stated_rules(case.body)) == []  # type: ignore[arg-type]


@given(st.sampled_from(RULES))
def test_every_rule_stated_in_words_is_in_the_operation_description(rule: Any) -> None:
    description = openapi_document("core")["paths"]["/api/v1/applications"]["post"]["description"]
    assert f"- {rule.rule}" in description
