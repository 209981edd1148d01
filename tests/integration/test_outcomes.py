"""Recording outcomes on the real database: exactly once, one completion per application,
and concurrent batches over the same applications neither deadlock nor double-count."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from shared.intake.caller import Caller
from shared.intake.schema import parse_application
from shared.intake.store import store_application
from shared.models import Application, Offer, Quote, QuoteStatus
from shared.platform.clock import moscow_today, utc_now
from shared.platform.db import database
from shared.quoting import insurers as catalogue
from shared.quoting.outcome_writer import OutcomeWriter
from shared.quoting.outcomes import FinalizeRequest, OfferOutcome, StatusOutcome, finalize_quote, finalize_quotes
from tests.support.infrastructure import RunInfrastructure
from tests.support.samples import WORKED_EXAMPLE_COEFFICIENTS, sample_application

DECLINED = StatusOutcome(QuoteStatus.DECLINED, "too young")


def offer(premium: str = "9441.80") -> OfferOutcome:
    return OfferOutcome(Decimal(premium), WORKED_EXAMPLE_COEFFICIENTS, "REF-1", utc_now() + timedelta(days=3))


@pytest.fixture(scope="module")
async def db(infrastructure: RunInfrastructure) -> AsyncIterator[None]:
    async with database(infrastructure.settings()):
        yield


async def new_application() -> tuple[uuid.UUID, list[uuid.UUID]]:
    payload = parse_application(sample_application(), today=moscow_today()).to_payload()
    application_id = uuid.uuid4()
    quotes = [
        Quote(id=uuid.uuid4(), application_id=application_id, insurer_code=i.code, insurer_name=i.name)
        for i in catalogue.select(())
    ]
    deadline = utc_now() + timedelta(seconds=60)
    await store_application(application_id, Caller("service", None), None, "f" * 64, payload, deadline, quotes)
    return application_id, [q.id for q in quotes]


async def test_a_batch_records_each_quote_once_and_completes_its_application_once(db: None) -> None:
    application_id, quote_ids = await new_application()
    first, rest = quote_ids[:4], quote_ids[4:]
    results = await finalize_quotes(
        [FinalizeRequest(q, offer(), attempts=1) for q in first] + [FinalizeRequest(first[0], DECLINED)]
    )
    assert [r.recorded for r in results] == [True, True, True, True, False]  # the repeat changes nothing
    assert not any(r.completed for r in results)
    assert (await Application.get(id=application_id)).pending_quotes == len(rest)

    results = await finalize_quotes([FinalizeRequest(q, DECLINED) for q in rest])
    completed = [r for r in results if r.completed]
    assert len(completed) == 1 and all(r.recorded for r in results)
    complete_event = completed[0].events[-1].body
    assert complete_event["type"] == "complete"
    stored = await Application.get(id=application_id)
    assert stored.status == "complete" and stored.pending_quotes == 0 and stored.completed_at is not None
    assert await Offer.filter(application_id=application_id).count() == len(first)

    again = await finalize_quote(first[1], DECLINED)
    assert not again.recorded and not again.events
    assert (await Quote.get(id=first[1])).status is QuoteStatus.OFFERED


async def test_unknown_quotes_and_an_empty_batch_change_nothing(db: None) -> None:
    assert await finalize_quotes([]) == []
    result = await finalize_quote(uuid.uuid4(), DECLINED)
    assert not result.recorded and result.application_id is None


async def test_concurrent_batches_over_the_same_applications_complete_each_exactly_once(db: None) -> None:
    # Two workers' batches both hold quotes of every application, in shuffled orders: with
    # row locks taken in any other order than a fixed one, this deadlocks.
    applications = [await new_application() for _ in range(8)]
    all_quotes = [(application_id, q) for application_id, quotes in applications for q in quotes]
    random.Random(7).shuffle(all_quotes)
    batches = [all_quotes[k::6] for k in range(6)]

    results = await asyncio.gather(
        *(finalize_quotes([FinalizeRequest(q, offer(), attempts=1) for _, q in batch]) for batch in batches)
    )

    flat = [r for batch_results in results for r in batch_results]
    assert all(r.recorded for r in flat) and len(flat) == len(all_quotes)
    completions = sorted(str(r.application_id) for r in flat if r.completed)
    assert completions == sorted(str(application_id) for application_id, _ in applications)
    for application_id, quotes in applications:
        stored = await Application.get(id=application_id)
        assert stored.status == "complete" and stored.pending_quotes == 0
        assert await Offer.filter(application_id=application_id).count() == len(quotes)


async def test_outcome_writer_groups_what_is_ready_together_and_fails_the_whole_group(db: None) -> None:
    application_id, quote_ids = await new_application()
    writer = OutcomeWriter()
    results = await asyncio.gather(*(writer.finalize(FinalizeRequest(q, offer())) for q in quote_ids))
    assert all(r.recorded for r in results)
    assert [r.application_id for r in results if r.completed] == [application_id]

    # A statement that fails (a premium beyond bigint) fails every request it carried, and
    # stores none of them: each handler hands its job back.
    _, others = await new_application()
    absurd = FinalizeRequest(others[0], offer("1" + "0" * 20))
    outcomes = await asyncio.gather(
        writer.finalize(absurd),
        *(writer.finalize(FinalizeRequest(q, DECLINED)) for q in others[1:3]),
        return_exceptions=True,
    )
    assert all(isinstance(o, Exception) for o in outcomes), outcomes
    assert {q.status for q in await Quote.filter(id__in=others[:3])} == {QuoteStatus.PENDING}
    await writer.close()
