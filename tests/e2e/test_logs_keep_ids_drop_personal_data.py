"""Logs at OSAGO_LOG_LEVEL=DEBUG keep every application id and none of the applicant's data.

A system of its own (its own database, vhost and log files ``logs-*.log``) runs with every
process at DEBUG, the level at which the database and broker libraries would print SQL
parameters and message bodies; a few applications with distinct applicants go through it, then
every process's log is read whole.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp
import pytest

from tests.support.infrastructure import private_infrastructure
from tests.support.samples import sample_application
from tests.support.system import RunningSystem, start_system, stop_system

pytestmark = pytest.mark.e2e

NAME_PREFIX = "logs-"

# (last, first, middle, birth date, passport series, passport number, licence series, licence number,
#  VIN, plate as submitted, plate as stored, STS series, STS number, city)
APPLICANTS: tuple[tuple[str, ...], ...] = (
    ("Кузнецова", "Елизавета", "Петровна", "1979-11-23", "4603", "918273", "77АВ", "564738",
     "JMBXTGF2WDZ012345", "Е482КХ197", "Е482КХ197", "50ОО", "731904", "Подольск"),
    ("Смирнов", "Артемий", "Григорьевич", "1990-07-05", "4011", "602915", "7812", "390457",
     "WVWZZZ1KZ8W987654", "M735OP78", "М735ОР78", "78УС", "205816", "Санкт-Петербург"),
    ("Ахмедов", "Рустам", "Ильдарович", "1968-02-29", "9205", "447120", "1633", "811209",
     "Z94CB41AAER654321", "т901ув116", "Т901УВ116", "16ХТ", "960372", "Казань"),
)  # fmt: skip


def application_body(applicant: tuple[str, ...]) -> dict[str, Any]:
    (last, first, middle, born, passport_series, passport_number, licence_series, licence_number,
     vin, plate, _, sts_series, sts_number, city) = applicant  # fmt: skip
    body = sample_application()
    body["vehicle"].update(vin=vin, plate=plate)
    body["vehicle"]["document"].update(series=sts_series, number=sts_number)
    person = {"last_name": last, "first_name": first, "middle_name": middle, "birth_date": born}
    body["owner"].update(person)
    body["owner"]["passport"].update(series=passport_series, number=passport_number)
    body["owner"]["registration"]["city"] = city
    driver = body["drivers"][0]
    driver.update(person, experience_since="2010-06-01")
    driver["license"].update(series=licence_series, number=licence_number, issued="2010-06-01")
    return body


def personal_strings(applicant: tuple[str, ...]) -> list[str]:
    """Everything of this applicant's that must not be written, in the forms it could take."""
    (last, first, middle, born, passport_series, passport_number, licence_series, licence_number,
     vin, plate, stored_plate, sts_series, sts_number, city) = applicant  # fmt: skip
    day = born.split("-")
    return [
        last, first, middle, f"{last} {first} {middle}",
        born, f"{day[2]}.{day[1]}.{day[0]}",
        f"{passport_series}{passport_number}", f"{passport_series} {passport_number}",
        f"{licence_series}{licence_number}", f"{licence_series} {licence_number}",
        f"{sts_series}{sts_number}", vin, plate, stored_plate, city,
    ]  # fmt: skip


def six_digit_numbers(applicant: tuple[str, ...]) -> list[str]:
    """Document numbers on their own: searched as whole numbers (not inside longer digit runs)."""
    return [applicant[5], applicant[7], applicant[12]]


async def run_applications(system: RunningSystem) -> list[dict[str, Any]]:
    """A few applications to their end (workers, events, the other core app's sockets), and a bad one."""
    await system.set_all_behaviours({"mode": "ok", "latency_ms": [20, 200], "fail_rate": 0.3, "fault": "error"})
    created: list[dict[str, Any]] = []
    for number, applicant in enumerate(APPLICANTS):
        status, body = await system.create(number % 2, application_body(applicant))
        assert status == 201, body
        created.append(body)
    streams = await asyncio.gather(*(system.collect_events(1, one, timeout=system.deadline_s + 15) for one in created))
    assert all(events[-1]["type"] == "complete" for events, _ in streams)
    for one in created:
        status, _ = await system.read(0, one)
        assert status == 200
    # A malformed body too: its validation errors must not echo the values either.
    bad = application_body(APPLICANTS[0])
    bad["owner"]["birth_date"] = "1979-11-32"
    status, _ = await system.create(0, bad)
    assert status == 422
    return created


async def test_debug_logs_keep_application_ids_and_drop_personal_data() -> None:
    async with (
        private_infrastructure(prefix="osago_logs") as (infrastructure, _),
        aiohttp.ClientSession() as session,
    ):
        system = await start_system(infrastructure, session, env={"OSAGO_LOG_LEVEL": "DEBUG"}, name_prefix=NAME_PREFIX)
        try:
            created = await run_applications(system)
        finally:
            # Stopped before the logs are read, so the shutdown lines are read too.
            exit_codes = await stop_system(system)
    assert all(code == 0 for code in exit_codes.values()), exit_codes

    logs = {process.name: process.log_since_start().decode("utf-8", "replace") for process in system.processes}
    everything = "\n".join(logs.values())
    assert all(name.startswith(NAME_PREFIX) for name in logs)
    # DEBUG really was on: each service's start-up line shows the level it runs at.
    for name in (f"{NAME_PREFIX}aggregator", f"{NAME_PREFIX}worker1", f"{NAME_PREFIX}core1"):
        starts = [
            e for line in logs[name].splitlines() if (e := _json(line)) is not None and e.get("msg") == "starting"
        ]
        assert starts and "DEBUG" in json.dumps(starts[0].get("settings"), ensure_ascii=False), (name, starts)

    accepted = [
        entry
        for line in logs[f"{NAME_PREFIX}aggregator"].splitlines()
        if (entry := _json(line)) is not None and entry.get("msg") == "application accepted"
    ]
    accepted_ids = {entry.get("application_id") for entry in accepted}
    for one in created:
        assert one["id"] in accepted_ids, f"application {one['id']} not logged intact by the aggregator"
        assert one["id"] in everything

    for applicant in APPLICANTS:
        for secret in personal_strings(applicant):
            for name, text in logs.items():
                assert secret not in text, f"{secret!r} in {name}.log: {_line_with(text, secret)}"
        for digits in six_digit_numbers(applicant):
            for name, text in logs.items():
                found = re.search(rf"(?<!\d){digits}(?!\d)", text)
                assert found is None, f"{digits!r} in {name}.log: {_line_with(text, digits)}"


def _json(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def _line_with(text: str, secret: str) -> str:
    return next((line for line in text.splitlines() if secret in line), "")[:400]
