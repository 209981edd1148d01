"""Recording a quote's final outcome: exactly once, whoever gets there first.

Workers, the expired-jobs consumer and the deadline sweeper all end quotes through
``finalize_quote``. The conditional update (``WHERE status = 'pending'``) makes every
later attempt a no-op, and the application's ``pending_quotes`` counter, decremented
under its row lock, tells exactly one of them that it finished the application.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from shared.models import QuoteStatus
from shared.platform.clock import utc_now
from shared.quoting.events import OutboxEvent, complete_event, final_event, offer_body


@dataclass(frozen=True, slots=True)
class OfferOutcome:
    premium: Decimal
    coefficients: dict[str, str]
    insurer_reference: str
    valid_until: datetime


@dataclass(frozen=True, slots=True)
class StatusOutcome:
    status: QuoteStatus  # any final status but OFFERED
    reason: str

    def __post_init__(self) -> None:
        if self.status in (QuoteStatus.PENDING, QuoteStatus.OFFERED):
            raise ValueError(f"{self.status} is not a final non-offer status")
        if not self.reason:
            raise ValueError("a final status needs a reason")


Outcome = OfferOutcome | StatusOutcome


@dataclass(slots=True)
class FinalizeResult:
    """What the caller must publish (then mark published) after the commit."""

    recorded: bool  # False: the quote was already final (or unknown); nothing changed
    quote_id: uuid.UUID
    application_id: uuid.UUID | None
    events: list[OutboxEvent] = field(default_factory=list)
    completed: bool = False


def to_kopecks(premium: Decimal) -> int:
    return int((premium * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class FinalizeRequest:
    quote_id: uuid.UUID
    outcome: Outcome
    attempts: int | None = None
    last_error: str | None = None


# One statement for any number of quotes, so one round trip and no transaction around it
# (the hot path of every worker; the ORM took six round trips per quote): end each quote
# still pending, store the offers, and count them off their applications.
#
# `locked` takes the application rows first, in id order, so two batches touching the same
# applications queue instead of deadlocking; `count(*)` makes it run to the end before
# anything else. The counter's UPDATE then reads each row's latest committed value, so of
# two quotes finishing at once exactly one sees the count reach zero and completes it.
_FINALIZE = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::varchar[], $3::text[], $4::int[], $5::text[], $6::uuid[],
                         $7::bigint[], $8::jsonb[], $9::varchar[], $10::timestamptz[])
        AS i(quote_id, status, reason, attempts, last_error, offer_id, premium_kopecks, coefficients,
             insurer_reference, valid_until)
), locked AS (
    SELECT a.id FROM application a
    WHERE a.id IN (SELECT q.application_id FROM quote q WHERE q.id = ANY($1::uuid[]))
    ORDER BY a.id FOR UPDATE
), ended AS (
    UPDATE quote q
    SET status = i.status, reason = i.reason, finished_at = $11,
        attempts = coalesce(i.attempts, q.attempts), last_error = coalesce(i.last_error, q.last_error)
    FROM input i
    WHERE q.id = i.quote_id AND q.status = 'pending' AND (SELECT count(*) FROM locked) >= 0
    RETURNING q.id, q.application_id, q.insurer_code, q.insurer_name
), offer AS (
    INSERT INTO offer (id, quote_id, application_id, insurer_code, premium_kopecks, coefficients,
                       insurer_reference, valid_until, created_at)
    SELECT i.offer_id, e.id, e.application_id, e.insurer_code, i.premium_kopecks, i.coefficients,
           i.insurer_reference, i.valid_until, $11
    FROM ended e JOIN input i ON i.quote_id = e.id
    WHERE i.status = 'offered'
), counted AS (
    UPDATE application a
    SET pending_quotes = a.pending_quotes - e.n,
        status = CASE WHEN a.pending_quotes = e.n THEN 'complete' ELSE a.status END,
        completed_at = CASE WHEN a.pending_quotes = e.n THEN $11 ELSE a.completed_at END
    FROM (SELECT application_id, count(*) AS n FROM ended GROUP BY application_id) e
    WHERE a.id = e.application_id
    RETURNING a.id, a.pending_quotes
)
SELECT e.id, e.application_id, e.insurer_code, e.insurer_name,
       coalesce(c.pending_quotes = 0, false) AS completed
FROM ended e LEFT JOIN counted c ON c.id = e.application_id
"""

# What a worker reads before asking an insurer: is the quote still pending, and (unless it
# has it from a sibling job of the same application) the application to price. Raw SQL:
# building the ORM query cost more than running it.
_QUOTE_STATE = "SELECT insurer_code, application_id, status FROM quote WHERE id = $1"
_QUOTE_STATE_AND_PAYLOAD = """
SELECT q.insurer_code, q.application_id, q.status, a.payload
FROM quote q JOIN application a ON a.id = q.application_id WHERE q.id = $1
"""


@dataclass(frozen=True, slots=True)
class QuoteState:
    insurer_code: str
    application_id: uuid.UUID
    pending: bool
    payload: dict[str, Any] | None  # None unless asked for


async def quote_state(quote_id: uuid.UUID, *, with_payload: bool) -> QuoteState | None:
    """The quote as a worker needs it before an insurer call; None for an unknown quote."""
    statement = _QUOTE_STATE_AND_PAYLOAD if with_payload else _QUOTE_STATE
    _, rows = await Tortoise.get_connection("default").execute_query(statement, [quote_id])
    if not rows:
        return None
    row = rows[0]
    return QuoteState(
        insurer_code=row["insurer_code"],
        application_id=row["application_id"],
        pending=row["status"] == QuoteStatus.PENDING.value,
        payload=json.loads(row["payload"]) if with_payload else None,
    )


_STATUSES_OF = "SELECT application_id, status FROM quote WHERE application_id = ANY($1::uuid[]) ORDER BY insurer_code"


async def statuses_by_application(
    application_ids: list[uuid.UUID], connection: BaseDBAsyncClient | None = None
) -> dict[uuid.UUID, list[QuoteStatus]]:
    """Every quote status of each application (for its `complete` event), in one query."""
    statuses: dict[uuid.UUID, list[QuoteStatus]] = {application_id: [] for application_id in application_ids}
    if application_ids:
        _, rows = await (connection or Tortoise.get_connection("default")).execute_query(
            _STATUSES_OF, [application_ids]
        )
        for row in rows:
            statuses[row["application_id"]].append(QuoteStatus(row["status"]))
    return statuses


async def finalize_quote(
    quote_id: uuid.UUID, outcome: Outcome, *, attempts: int | None = None, last_error: str | None = None
) -> FinalizeResult:
    return (await finalize_quotes([FinalizeRequest(quote_id, outcome, attempts, last_error)]))[0]


async def finalize_quotes(requests: list[FinalizeRequest]) -> list[FinalizeResult]:
    """Record the outcomes in one statement; one result per request, in order.

    A quote named twice is recorded once, from its first request; the other gets
    ``recorded=False``, as any later attempt does.
    """
    if not requests:
        return []
    firsts: dict[uuid.UUID, FinalizeRequest] = {}
    for request in requests:
        firsts.setdefault(request.quote_id, request)
    unique = list(firsts.values())
    now = utc_now()
    offer_ids = {r.quote_id: uuid.uuid4() for r in unique}
    offers_in = [r.outcome if isinstance(r.outcome, OfferOutcome) else None for r in unique]
    connection = Tortoise.get_connection("default")
    _, rows = await connection.execute_query(
        _FINALIZE,
        [
            [r.quote_id for r in unique],
            [status_of(r.outcome).value for r in unique],
            [None if isinstance(r.outcome, OfferOutcome) else r.outcome.reason for r in unique],
            [r.attempts for r in unique],
            [None if r.last_error is None else r.last_error[:500] for r in unique],
            [offer_ids[r.quote_id] for r in unique],
            [None if o is None else to_kopecks(o.premium) for o in offers_in],
            [None if o is None else json.dumps(o.coefficients) for o in offers_in],
            [None if o is None else o.insurer_reference for o in offers_in],
            [None if o is None else o.valid_until for o in offers_in],
            now,
        ],
    )
    ended = {row["id"]: row for row in rows}
    # Every ended quote of a completed application reads `completed`; one of them carries the event.
    completing: dict[uuid.UUID, uuid.UUID] = {}
    for row in rows:
        if row["completed"]:
            completing.setdefault(row["application_id"], row["id"])
    # Whoever took a count to zero committed after every other quote: all are final now.
    statuses = await statuses_by_application(list(completing), connection)

    results: list[FinalizeResult] = []
    for request in requests:
        ended_row = ended.get(request.quote_id)
        if ended_row is None or firsts[request.quote_id] is not request:
            results.append(FinalizeResult(recorded=False, quote_id=request.quote_id, application_id=None))
            continue
        completes = completing.get(ended_row["application_id"]) == request.quote_id
        results.append(_recorded(request, ended_row, offer_ids[request.quote_id], statuses if completes else None))
    return results


def status_of(outcome: Outcome) -> QuoteStatus:
    return QuoteStatus.OFFERED if isinstance(outcome, OfferOutcome) else outcome.status


def _recorded(
    request: FinalizeRequest,
    row: dict[str, Any],
    offer_id: uuid.UUID,
    statuses: dict[uuid.UUID, list[QuoteStatus]] | None,
) -> FinalizeResult:
    """The result of a recorded request; ``statuses`` is given to the one that completed its application."""
    outcome = request.outcome
    application_id: uuid.UUID = row["application_id"]
    insurer = {"code": row["insurer_code"], "name": row["insurer_name"]}
    if isinstance(outcome, OfferOutcome):
        offer = offer_body(
            offer_id, to_kopecks(outcome.premium), outcome.coefficients, outcome.valid_until, outcome.insurer_reference
        )
        event = final_event(request.quote_id, application_id, insurer, QuoteStatus.OFFERED, None, offer)
    else:
        event = final_event(request.quote_id, application_id, insurer, outcome.status, outcome.reason, None)
    result = FinalizeResult(
        recorded=True,
        quote_id=request.quote_id,
        application_id=application_id,
        events=[OutboxEvent(event, application_id, request.quote_id)],
    )
    if statuses is not None:
        result.completed = True
        result.events.append(OutboxEvent(complete_event(application_id, statuses[application_id]), application_id))
    return result
