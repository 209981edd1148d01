"""Schemathesis against the served /openapi.json of the core app and of the aggregator API.

Both services run for real (``conftest.py``: subprocesses on a database and vhost of their
own, a worker and the sandbox behind them). Every documented operation is generated from
the document each service serves, through schemathesis's coverage phase (boundary and
negative values of every parameter, unexpected methods) and its fuzzing phase (hypothesis,
positive and negative data), and every answer is checked:

- schemathesis: every check it has, with its defaults (``not_a_server_error``, the status, content
  type, header and schema conformance of every answer, errors included, ``unsupported_method``,
  ``missing_required_header``, ``ignored_auth``, ``positive_data_acceptance``,
  ``negative_data_rejection``, ...). ``positive_data_acceptance`` also takes a 422 and, on the socket
  and the aggregator's create, a 400; ``stated_refusals_only`` narrows those to what the operations'
  descriptions say (the date rules of shared.intake.schema.beyond, an opaque cursor, a plain GET of
  the socket, caller headers the core app never sends): a schema-valid request refused for any
  other reason fails the run;
- ours: nothing is written for a refused request (``application`` and ``quote`` rows counted
  before and after every create: a refusal adds none, a 201 adds one application and one quote
  per insurer, a replay none), and who may read what (API.md): an application opens for its
  access token or the partner that made it, and is a 404 for anybody else, over REST and at the
  socket's address alike (the socket is a plain GET here: 400 once admitted, before the upgrade).

Credentials are not left to the generator alone: each case is given, by a hash of its content
(so a case always gets the same), a caller (a partner key, the other partner's key, a key that is
not valid, an access token, another application's token, none, or what schemathesis generated;
real ones are marked as supplied, so ``ignored_auth`` probes the request without them)
and, where the path has an application id, a real application or the generated id; a share of the
positive creates carry the valid sample body, so 201s and Idempotency-Key replays are reached too.

Counts per operation and phase go to tests/artifacts/fuzz/requests.json; the last test asserts
every operation was reached and the total. ``--fuzz-long`` sends six times as many (10,000 and more).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from requests.structures import CaseInsensitiveDict
from schemathesis import Case, Config, Response
from schemathesis.checks import CheckContext
from schemathesis.transport.prepare import get_exclude_headers

from shared.intake.caller import ACCESS_TOKEN_HEADER, CLIENT_SCOPE_HEADER, PARTNER_HEADER
from shared.intake.schema.beyond import beyond_schema
from shared.service.openapi import openapi_document
from tests.fuzz.conftest import INSURERS, LONG_FACTOR, SERVICE_TOKEN, Created, FuzzSystem
from tests.support.samples import sample_application

pytestmark = pytest.mark.fuzz

SEED = 20261201  # `make test` replays the same requests; --fuzz-long draws new ones

# Every check schemathesis has runs (its defaults; nothing excluded). positive_data_acceptance also
# takes a 422, which stated_refusals_only then narrows to the rules the document states in words.
POSITIVE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
# A 400 for a request the document allows, each narrowed by stated_refusals_only: the socket's
# address answers a plain GET (no upgrade: requests cannot make one) with 400, and the aggregator
# refuses a partner id that names no partner (both in the operations' descriptions).
EXTRA_POSITIVE = {
    "GET /api/v1/applications/{application_id}/offers": ["400"],
    "POST /api/v1/applications": ["400"],
}


def stated_refusals_only(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A request the document allows is refused with 422 only for what its description says."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code not in (400, 422):
        return None
    error = response.json()["error"]
    if response.status_code == 400:
        if case.path == OFFERS_PATH:
            return None  # a plain GET of the socket's address: requests cannot upgrade (documented 400)
        # The aggregator's create: caller headers the core app never sends (its description).
        assert (case.method, error["code"]) == ("POST", "bad_client_scope"), f"schema-valid request refused: {error}"
        assert "names no partner" in error["message"] or "does not match" in error["message"], error
        return None
    fields = error["fields"]
    if case.method == "POST":
        unstated = [field for field in fields if not beyond_schema(field)]
    else:  # the list: only a cursor it did not issue (opaque, as its description says)
        unstated = [field for field in fields if field["path"] != "cursor"]
    assert not unstated, f"schema-valid request refused for rules the document does not state: {unstated}"
    return None


# Fuzzing-phase examples per operation in `make test` (the coverage phase adds its own cases).
CORE_BUDGET = {
    "POST /api/v1/applications": 450,
    "GET /api/v1/applications": 200,
    "GET /api/v1/applications/{application_id}": 300,
    "GET /api/v1/applications/{application_id}/offers": 200,
    "GET /api/v1/reference": 50,
}
AGGREGATOR_BUDGET = {
    "POST /api/v1/applications": 300,
    "GET /api/v1/applications/{application_id}": 250,
    "GET /api/v1/applications/{application_id}/offers": 150,
}
MIN_TOTAL = 2_000
MIN_TOTAL_LONG = 10_000
MIN_PER_OPERATION = 50

APPLICATIONS_PATH = "/api/v1/applications"
ONE_PATH = "/api/v1/applications/{application_id}"
OFFERS_PATH = "/api/v1/applications/{application_id}/offers"


def fuzz_config(budget: dict[str, int], *, long: bool) -> Config:
    factor = LONG_FACTOR if long else 1
    # Matched by name ("METHOD /path"): include-path matches by prefix, include-method on its own.
    operations = [
        {
            "include-name": label,
            "generation": {"max-examples": examples * factor},
            "checks": {
                "positive_data_acceptance": {"expected-statuses": POSITIVE_STATUSES + EXTRA_POSITIVE.get(label, [])}
            },
        }
        for label, examples in budget.items()
    ]
    data: dict[str, Any] = {
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large", "large_base_example"],
        "request-timeout": 15,
        "generation": {"mode": "all", "database": "none", "deterministic": not long},
        "checks": {"positive_data_acceptance": {"expected-statuses": POSITIVE_STATUSES}},
        "phases": {
            "examples": {"enabled": False},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "operations": operations,
    }
    if not long:
        data["seed"] = SEED
    return Config.from_dict(data)


# The documents are built here, at collection, because schemathesis's pytest integration needs the
# operations then (its lazy `from_fixture` loader does not run on pytest 9.2: it sets Node._nodeid);
# the ports are chosen later, so each case is sent to the running service's base URL, and the first
# test checks that each service serves exactly this document at /openapi.json.
# tests/conftest.py loads the long profile for --fuzz-long, before any test module is imported.
LONG = hypothesis.settings.get_current_profile_name() == "osago-long"
core = schemathesis.openapi.from_dict(openapi_document("core"), config=fuzz_config(CORE_BUDGET, long=LONG))
aggregator = schemathesis.openapi.from_dict(
    openapi_document("aggregator"), config=fuzz_config(AGGREGATOR_BUDGET, long=LONG)
)


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_each_service_serves_the_document_the_fuzzer_reads(fuzz_system: FuzzSystem, http: requests.Session) -> None:
    for base_url, service in ((fuzz_system.core_url, "core"), (fuzz_system.aggregator_url, "aggregator")):
        response = http.get(f"{base_url}/openapi.json", timeout=10)
        assert response.status_code == 200
        assert response.json() == json.loads(json.dumps(openapi_document(service))), service  # type: ignore[arg-type]
    assert LONG == fuzz_system.long


# --- choosing the caller and the target of a case -------------------------------------------------


def _digest(case: Case) -> int:
    body = case.body if isinstance(case.body, dict | list | str | int | float | bool) or case.body is None else None
    content = json.dumps(
        [case.method, case.path, case.path_parameters, case.query, dict(case.headers or {}), body],
        sort_keys=True,
        default=repr,
    )
    return int.from_bytes(hashlib.sha256(content.encode()).digest()[:16], "big")


class Choices:
    """Draws for one case from a hash of what schemathesis generated: the same case, the same draws."""

    def __init__(self, case: Case) -> None:
        self._left = _digest(case)

    def pick(self, *options: str) -> str:
        self._left, index = divmod(self._left, len(options))
        return options[index]


def _set_header(case: Case, name: str, value: str | None) -> None:
    if name.lower() in {excluded.lower() for excluded in get_exclude_headers(case)}:
        return  # a coverage case "missing header X": X stays missing, or the case would say nothing
    if case.headers is None:
        case.headers = CaseInsensitiveDict()
    for existing in [key for key in case.headers if key.lower() == name.lower()]:
        del case.headers[existing]
    if value is not None:
        case.headers[name] = value


def _sent_headers(case: Case) -> dict[str, str]:
    """The headers the request carries: a coverage case "missing header X" drops X whatever we set."""
    excluded = {name.lower() for name in get_exclude_headers(case)}
    return {k.lower(): v for k, v in (case.headers or {}).items() if k.lower() not in excluded and isinstance(v, str)}


def _query_token(case: Case) -> str | None:
    value = (case.query or {}).get("token")
    return value if isinstance(value, str) and value else None


def _bearer(value: str | None) -> str | None:
    if value and value.startswith("Bearer "):
        return value[len("Bearer ") :].strip() or None
    return None


WRONG_KEY = "not-a-key-" + "x" * 20
TARGETS = ("owner", "browser", "pending", "generated")


def _choose_target(case: Case, system: FuzzSystem, choices: Choices) -> Created | None:
    target = system.applications.get(choices.pick(*TARGETS))
    if target is not None:
        case.path_parameters["application_id"] = target.id
    return target


def _token_of(system: FuzzSystem, target: Created | None, own: bool) -> str:
    if own and target is not None:
        return target.access_token
    return next(a.access_token for a in system.applications.values() if a is not target)


def _place_token(case: Case, choices: Choices, token: str, *, header: str, query_allowed: bool) -> None:
    if query_allowed and choices.pick("query", "header") == "query":
        case.query = {**(case.query or {}), "token": token}
    else:
        _set_header(case, header, f"Bearer {token}" if header == "Authorization" else token)


def _supplied_credentials(case: Case) -> None:
    """Tell schemathesis the credentials are ours, as its auth providers would: ignored_auth then
    probes the same request without them and with invalid ones (expecting 401), instead of
    taking a real key for a generated one. There is no public setter outside an auth provider,
    and ours needs the running system's keys, which exist only after collection."""
    case._has_explicit_auth = True


def _maybe_valid_body(case: Case, choices: Choices) -> None:
    """A quarter of the creates that carry a JSON object get the valid sample instead: 201s, replays, 409s."""
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    if positive and case.media_type == "application/json" and isinstance(case.body, dict):
        if choices.pick("sample", "generated", "generated", "generated") == "sample":
            case.body = sample_application()


def _read_expectation(
    case: Case, system: FuzzSystem, partner: str | None, token: str | None, *, socket: bool
) -> set[int]:
    """API.md: the access token or the partner that made it reads an application; anybody else gets 404."""
    path_id = case.path_parameters.get("application_id")
    target = next((a for a in system.applications.values() if a.id == path_id), None)
    readable = target is not None and (
        (partner is not None and partner == target.partner) or (token is not None and token == target.access_token)
    )
    if not readable:
        return {404}  # no credentials, a wrong token, another's token, another partner, no such id
    # A plain GET of the socket's address is admitted, then refused by the upgrade itself.
    return {400} if socket else {200}


# --- the core app: callers as people and partners are ---------------------------------------------

CORE_OPERATIONS = {tuple(label.split(" ", 1)) for label in CORE_BUDGET}
CORE_CALLERS = {
    ("POST", APPLICATIONS_PATH): ("owner_key", "browser", "wrong_key", "generated"),
    ("GET", APPLICATIONS_PATH): ("owner_key", "owner_key", "other_key", "wrong_key", "browser", "generated"),
    ("GET", "/api/v1/reference"): ("browser", "owner_key", "wrong_key", "generated"),
}
CORE_READERS = ("owner_key", "other_key", "wrong_key", "token", "other_token", "browser", "generated")


def prepare_core(case: Case, system: FuzzSystem) -> None:
    """Give a case of a documented operation its caller (and target); other methods go as generated."""
    if (case.method, case.path) not in CORE_OPERATIONS:
        return
    choices = Choices(case)
    caller = choices.pick(*CORE_CALLERS.get((case.method, case.path), CORE_READERS))
    if caller == "generated":
        return
    if case.path in (ONE_PATH, OFFERS_PATH):
        target = _choose_target(case, system, choices)
        _set_header(case, "Authorization", None)
        if case.query:
            case.query.pop("token", None)
        if caller in ("token", "other_token"):
            token = _token_of(system, target, own=caller == "token")
            _place_token(case, choices, token, header="Authorization", query_allowed=case.path == OFFERS_PATH)
            _supplied_credentials(case)
    _set_header(case, "X-API-Key", None)
    if caller in ("owner_key", "other_key"):
        _set_header(case, "X-API-Key", system.keys[caller.removesuffix("_key")])
        _supplied_credentials(case)
    elif caller == "wrong_key":
        _set_header(case, "X-API-Key", WRONG_KEY)
    if case.method == "POST":
        _maybe_valid_body(case, choices)


def expect_core(case: Case, system: FuzzSystem) -> set[int] | None:
    """The status API.md gives this request, from what it carries; None: not ours to say."""
    if (case.method, case.path) not in CORE_OPERATIONS:
        return None
    sent = _sent_headers(case)
    key = sent.get("x-api-key")
    partner = {system.keys["owner"]: "owner", system.keys["other"]: "other"}.get(key) if key else None
    if key is not None and partner is None:
        return {401} if key == WRONG_KEY else None  # 401 first, on any path
    if case.method == "GET" and case.path == APPLICATIONS_PATH and key is None:
        return {401}
    if case.path not in (ONE_PATH, OFFERS_PATH):
        return None
    socket = case.path == OFFERS_PATH
    token = (_query_token(case) if socket else None) or _bearer(sent.get("authorization"))
    return _read_expectation(case, system, partner, token, socket=socket)


# --- the aggregator: callers as the core app is ----------------------------------------------------

AGGREGATOR_OPERATIONS = {tuple(label.split(" ", 1)) for label in AGGREGATOR_BUDGET}


def prepare_aggregator(case: Case, system: FuzzSystem) -> None:
    choices = Choices(case)
    service = choices.pick("valid", "valid", "valid", "valid", "valid", "none", "wrong")
    _set_header(case, "Authorization", None)
    if service == "valid":
        _set_header(case, "Authorization", f"Bearer {SERVICE_TOKEN}")
        _supplied_credentials(case)
    elif service == "wrong":
        _set_header(case, "Authorization", f"Bearer {SERVICE_TOKEN}-not")
    if (case.method, case.path) not in AGGREGATOR_OPERATIONS:
        return
    caller = choices.pick(*AGGREGATOR_CALLERS)
    if caller == "generated":
        return
    for header in (ACCESS_TOKEN_HEADER, PARTNER_HEADER, CLIENT_SCOPE_HEADER):
        _set_header(case, header, None)
    if case.path in (ONE_PATH, OFFERS_PATH):
        target = _choose_target(case, system, choices)
        if case.query:
            case.query.pop("token", None)
        if caller in ("token", "other_token"):
            token = _token_of(system, target, own=caller == "token")
            _place_token(case, choices, token, header=ACCESS_TOKEN_HEADER, query_allowed=case.path == OFFERS_PATH)
    if caller in ("owner", "other", "ghost", "malformed"):
        partner_id = _partner_id(system, case, caller)
        _set_header(case, PARTNER_HEADER, partner_id)
        _set_header(case, CLIENT_SCOPE_HEADER, f"partner:{partner_id}")
    if case.method == "POST":
        _maybe_valid_body(case, choices)


# "ghost": a well-formed partner id that is nobody's; "malformed": 36 characters of [0-9a-f-] that
# are no UUID (it passed the scope check once, and was a 500 when stored).
AGGREGATOR_CALLERS = ("service", "owner", "other", "token", "other_token", "ghost", "malformed", "generated")
MALFORMED_PARTNER = "-" * 36


def _partner_id(system: FuzzSystem, case: Case, caller: str) -> str:
    if caller == "ghost":
        return str(uuid.UUID(int=_digest(case) % (1 << 128)))
    if caller == "malformed":
        return MALFORMED_PARTNER
    return system.partner_ids[caller]


def expect_aggregator(case: Case, system: FuzzSystem) -> set[int] | None:
    if not case.path.startswith("/api/"):
        return None
    sent = _sent_headers(case)
    if sent.get("authorization") != f"Bearer {SERVICE_TOKEN}":
        return {401}  # before anything else, whatever else is sent (405s included)
    if (case.method, case.path) not in AGGREGATOR_OPERATIONS:
        return None
    partner_id = sent.get(PARTNER_HEADER.lower())
    scope = sent.get(CLIENT_SCOPE_HEADER.lower())
    if case.method == "POST":
        if partner_id == MALFORMED_PARTNER and scope == f"partner:{partner_id}":
            return {400}  # bad_client_scope, before anything about the key or the body
        if (
            partner_id is not None
            and scope == f"partner:{partner_id}"
            and partner_id not in system.partner_ids.values()
        ):
            return {400, 413, 415, 422}  # whatever is wrong with the body first, never stored
        return None
    # Any other partner id (generated, a ghost) is nobody's: a stranger, as no credentials are.
    partner = {v: k for k, v in system.partner_ids.items()}.get(partner_id) if partner_id else None
    socket = case.path == OFFERS_PATH
    token = sent.get(ACCESS_TOKEN_HEADER.lower()) or (_query_token(case) if socket else None)
    return _read_expectation(case, system, partner, token, socket=socket)


# --- the run ---------------------------------------------------------------------------------------


def run_case(case: Case, system: FuzzSystem, http: requests.Session, request_log: dict[str, Any], service: str) -> None:
    if service == "core":
        prepare_core(case, system)
        expected = expect_core(case, system)
    else:
        prepare_aggregator(case, system)
        expected = expect_aggregator(case, system)
    creates = case.method == "POST" and case.path == APPLICATIONS_PATH
    before = system.rows.counts() if creates else None
    base_url = system.core_url if service == "core" else system.aggregator_url
    response = case.call(base_url=base_url, session=http)
    _record(request_log, service, case, response)
    sent = f"sent {response.request.method} {response.request.url} {dict(response.request.headers)}"
    if before is not None:
        after = system.rows.counts()
        added = (after[0] - before[0], after[1] - before[1])
        if response.status_code == 201 and response.headers.get("idempotent-replayed") != ["true"]:
            assert added == (1, len(INSURERS)), f"a 201 stored {added} (applications, quotes); {sent}"
        else:
            # API.md: nothing is written when a request is refused (nor for a replay).
            assert added == (0, 0), f"{response.status_code} {response.text[:200]} but stored {added}; {sent}"
    if expected is not None:
        assert response.status_code in expected, (
            f"API.md says {sorted(expected)}, got {response.status_code}: {response.text[:300]}; {sent}"
        )
    if response.status_code == 200 and case.path == ONE_PATH:
        assert response.json()["id"] == case.path_parameters["application_id"]
    case.validate_response(response, additional_checks=[stated_refusals_only])


def _record(request_log: dict[str, Any], service: str, case: Case, response: Response) -> None:
    label = case.operation.label
    entry = request_log.setdefault(service, {}).setdefault(label, {"requests": 0, "phases": {}, "statuses": {}})
    entry["requests"] += 1
    phase = case.meta.phase.name.value if case.meta is not None else "unknown"
    if f"{case.method} {case.path}" != label:
        phase = f"{phase}, undocumented method"
    entry["phases"][phase] = entry["phases"].get(phase, 0) + 1
    status = str(response.status_code)
    entry["statuses"][status] = entry["statuses"].get(status, 0) + 1


@core.parametrize()
def test_core_app_answers_every_generated_request_as_documented(
    case: Case, fuzz_system: FuzzSystem, http: requests.Session, request_log: dict[str, Any]
) -> None:
    run_case(case, fuzz_system, http, request_log, "core")


@aggregator.parametrize()
def test_aggregator_answers_every_generated_request_as_documented(
    case: Case, fuzz_system: FuzzSystem, http: requests.Session, request_log: dict[str, Any]
) -> None:
    run_case(case, fuzz_system, http, request_log, "aggregator")


# --- found by hand around the fuzzer: an Idempotency-Key that is not UTF-8 -------------------------

NOT_UTF8_KEY = "caf\xe9"  # requests sends header values as Latin-1: the byte 0xE9, no UTF-8


def test_the_aggregator_refuses_an_idempotency_key_that_is_not_ascii(
    fuzz_system: FuzzSystem, http: requests.Session
) -> None:
    before = fuzz_system.rows.counts()
    response = http.post(
        f"{fuzz_system.aggregator_url}{APPLICATIONS_PATH}",
        json=sample_application(),
        headers={"Authorization": f"Bearer {SERVICE_TOKEN}", "Idempotency-Key": NOT_UTF8_KEY},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_idempotency_key"
    assert fuzz_system.rows.counts() == before


def test_the_core_app_refuses_an_idempotency_key_that_is_not_ascii(
    fuzz_system: FuzzSystem, http: requests.Session
) -> None:
    before = fuzz_system.rows.counts()
    response = http.post(
        f"{fuzz_system.core_url}{APPLICATIONS_PATH}",
        json=sample_application(),
        headers={"Idempotency-Key": NOT_UTF8_KEY},
        timeout=10,
    )
    assert (response.status_code, fuzz_system.rows.counts()) == (400, before), response.text


def test_every_documented_operation_was_fuzzed(fuzz_system: FuzzSystem, request_log: dict[str, Any]) -> None:
    """Runs last: every operation reached, often enough, and the run's total; printed with -s or -rA."""
    counts = Counter[str]()
    for service, budget in (("core", CORE_BUDGET), ("aggregator", AGGREGATOR_BUDGET)):
        for label in budget:
            entry = request_log.get(service, {}).get(label)
            assert entry is not None, f"{service} {label} was never called"
            counts[f"{service} {label}"] = entry["requests"]
            print(f"{service:10} {label:50} {entry['requests']:6}  {entry['phases']}  {entry['statuses']}")
    total = sum(counts.values())
    print(f"total {total} requests over {len(counts)} operations")
    assert total >= (MIN_TOTAL_LONG if fuzz_system.long else MIN_TOTAL)
    assert min(counts.values()) >= MIN_PER_OPERATION, counts
