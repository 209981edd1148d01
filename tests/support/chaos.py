"""Clients that behave as real ones do under faults, and the counts a chaos run is judged by.

A client posts one application (a 503 or a dropped connection is retried after Retry-After with
the same Idempotency-Key), then follows its offers socket until the server closes it with 1000,
opening it again whenever it drops. The tally reads what the database stored for the accepted
applications and counts, like a Jepsen history: accepted, complete, lost, stuck, late,
duplicated offers stored, duplicated events shown.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from shared.models import Application, Offer, Quote, QuoteStatus
from tests.support.samples import sample_application
from tests.support.supervised import SupervisedCluster

# An application is late when it completed more than this after its deadline.
LATE_AFTER_S = 5.0


@dataclass
class ClientRecord:
    created: dict[str, Any] | None = None
    refusals: int = 0  # 503s and connection errors before the 201
    connections: int = 0
    final_close: int | None = None
    event_ids: set[str] = field(default_factory=set)
    finals: Counter[str] = field(default_factory=Counter)  # insurer code -> final events seen (deduplicated)
    duplicates_shown: int = 0  # an event id sent twice on one socket
    saw_complete: bool = False


async def run_client(
    n: int, session: aiohttp.ClientSession, urls: Sequence[str], give_up: float, *, key_prefix: str = "chaos"
) -> ClientRecord:
    """Client ``n``: spreads its tries over ``urls`` (core apps or one balancer) until ``give_up``
    (a monotonic time)."""
    record = ClientRecord()
    headers = {"Idempotency-Key": f"{key_prefix}-{n}"}
    while record.created is None and time.monotonic() < give_up:
        url = urls[(n + record.refusals) % len(urls)]
        wait_s = 1.0
        try:
            async with session.post(
                f"{url}/api/v1/applications",
                json=sample_application(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=15),
            ) as response:
                if response.status == 201:
                    record.created = await response.json()
                    break
                wait_s = float(response.headers.get("Retry-After", wait_s))
        except (aiohttp.ClientError, TimeoutError):
            pass
        record.refusals += 1
        await asyncio.sleep(wait_s)
    if record.created is None:
        return record

    created = record.created
    while time.monotonic() < give_up:
        url = urls[(n + record.connections + 1) % len(urls)]
        record.connections += 1
        socket_url = f"{url}{created['links']['offers']}?token={created['access_token']}"
        try:
            async with session.ws_connect(socket_url, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
                seen_here: set[str] = set()
                async for message in ws:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        break
                    event = json.loads(message.data)
                    if event["event_id"] in seen_here:
                        record.duplicates_shown += 1
                    seen_here.add(event["event_id"])
                    if event["event_id"] not in record.event_ids and event["type"] in ("offer", "quote_status"):
                        record.finals[event["insurer"]["code"]] += 1
                    record.event_ids.add(event["event_id"])
                    record.saw_complete |= event["type"] == "complete"
                record.final_close = ws.close_code
            if record.final_close == 1000:
                break
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.5)
    return record


@dataclass
class Tally:
    applications: int
    accepted: int
    refusals: int
    complete: int
    by_status: Counter[str]
    lost: int
    stuck: int
    late: int
    duplicate_offers: int
    duplicates_shown: int
    connections: int
    streams_incomplete: int  # accepted, but the client never saw `complete` and a 1000 close
    finals_wrong: int  # accepted, but some insurer's final event was seen other than once
    latest_completion_s: float  # the latest completion relative to its deadline

    def lines(self) -> str:
        return (
            f"  accepted {self.accepted} of {self.applications} (after {self.refusals} refusals retried), "
            f"complete {self.complete}\n"
            f"  quotes by status {dict(self.by_status)}\n"
            f"  lost {self.lost}, stuck {self.stuck}, late (> deadline + {LATE_AFTER_S:g} s) {self.late}, "
            f"duplicate offers stored {self.duplicate_offers}, duplicate events shown {self.duplicates_shown}\n"
            f"  socket connections {self.connections}, streams not ended by `complete` + 1000: "
            f"{self.streams_incomplete}, clients that saw an insurer's final other than once: {self.finals_wrong}; "
            f"latest completion {self.latest_completion_s:+.1f} s from its deadline\n"
        )


async def tally(records: Sequence[ClientRecord]) -> Tally:
    """What the database stored for the accepted applications, against what the clients saw."""
    accepted = [r.created["id"] for r in records if r.created is not None]
    applications = await Application.filter(id__in=accepted)
    quotes = await Quote.filter(application_id__in=accepted)
    offers = await Offer.filter(application_id__in=accepted)
    stuck = [a for a in applications if a.status != "complete"] + [q for q in quotes if q.status is QuoteStatus.PENDING]
    late = [
        a
        for a in applications
        if a.completed_at is None or (a.completed_at - a.deadline).total_seconds() > LATE_AFTER_S
    ]
    offers_per_quote = Counter(o.quote_id for o in offers)  # type: ignore[attr-defined]
    return Tally(
        applications=len(records),
        accepted=len(accepted),
        refusals=sum(r.refusals for r in records),
        complete=sum(1 for a in applications if a.status == "complete"),
        by_status=Counter(q.status.value for q in quotes),
        lost=len(accepted) - len(applications),
        stuck=len(stuck),
        late=len(late),
        duplicate_offers=sum(count - 1 for count in offers_per_quote.values()),
        duplicates_shown=sum(r.duplicates_shown for r in records),
        connections=sum(r.connections for r in records),
        streams_incomplete=sum(
            1 for r in records if r.created is not None and not (r.saw_complete and r.final_close == 1000)
        ),
        finals_wrong=sum(1 for r in records if r.created is not None and set(r.finals.values()) != {1}),
        latest_completion_s=max(
            ((a.completed_at - a.deadline).total_seconds() for a in applications if a.completed_at), default=0.0
        ),
    )


async def load(
    cluster: SupervisedCluster,
    count: int,
    per_second: float,
    key_prefix: str,
    nemesis: Callable[[], Awaitable[None]] | None = None,
    patience_s: float = 90.0,
) -> list[ClientRecord]:
    """``count`` clients through the balancer at ``per_second``, ``nemesis`` beside them."""
    started = time.monotonic()
    faults = asyncio.create_task(nemesis()) if nemesis else None
    async with aiohttp.ClientSession() as session:
        clients = []
        for n in range(count):
            give_up = time.monotonic() + patience_s
            clients.append(asyncio.create_task(run_client(n, session, [cluster.url], give_up, key_prefix=key_prefix)))
            await asyncio.sleep(max(0.0, started + (n + 1) / per_second - time.monotonic()))
        records = await asyncio.gather(*clients)
    if faults:
        await faults
    return list(records)


def assert_nothing_lost(counts: Tally, records: list[ClientRecord]) -> None:
    assert counts.accepted == len(records), counts.lines()
    assert counts.lost == 0 and counts.stuck == 0 and counts.late == 0, counts.lines()
    assert counts.duplicate_offers == 0 and counts.duplicates_shown == 0, counts.lines()
    assert counts.streams_incomplete == 0 and counts.finals_wrong == 0, counts.lines()
