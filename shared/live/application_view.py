"""Reading one application back: the GET body of API.md and the events to replay."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

from shared.models import Application, ApplicationStatus, Offer, Quote, QuoteStatus
from shared.platform.clock import iso_utc
from shared.platform.metrics import SNAPSHOT_READS
from shared.quoting.events import stored_events, stored_offer_body


@dataclass(frozen=True, slots=True)
class ApplicationSnapshot:
    application: Application
    quotes: list[Quote]
    offers: list[Offer]

    def view(self) -> dict[str, Any]:
        names = {q.insurer_code: q.insurer_name for q in self.quotes}
        offers = sorted(self.offers, key=lambda o: (o.premium_kopecks, o.insurer_code))
        return {
            "id": str(self.application.id),
            "status": self.application.status.value,
            "deadline": iso_utc(self.application.deadline),
            "created_at": iso_utc(self.application.created_at),
            "insurers": [
                {
                    "code": q.insurer_code,
                    "name": q.insurer_name,
                    "status": q.status.value,
                    "reason": q.reason if q.status is not QuoteStatus.PENDING else None,
                }
                for q in self.quotes
            ],
            "offers": [
                {
                    "insurer": {"code": o.insurer_code, "name": names.get(o.insurer_code, o.insurer_code)},
                    **stored_offer_body(o),
                }
                for o in offers
            ],
        }

    def events(self) -> list[dict[str, Any]]:
        return stored_events(self.application, self.quotes, self.offers)


async def load_snapshots(
    applications: list[Application], connection: BaseDBAsyncClient | None = None
) -> list[ApplicationSnapshot]:
    """Snapshots of many applications in two queries (a list page), in the order given;
    ``connection``: the replica for a lag-tolerant read (None: the primary)."""
    ids = [application.id for application in applications]
    quotes: dict[uuid.UUID, list[Quote]] = {application_id: [] for application_id in ids}
    offers: dict[uuid.UUID, list[Offer]] = {application_id: [] for application_id in ids}
    if ids:
        for quote in await Quote.filter(application_id__in=ids).using_db(connection).order_by("insurer_code"):
            quotes[quote.application_id].append(quote)
        for offer in await Offer.filter(application_id__in=ids).using_db(connection):
            offers[offer.application_id].append(offer)
    return [ApplicationSnapshot(a, quotes[a.id], offers[a.id]) for a in applications]


# One round trip for an application, its quotes and their offers (every socket opens with a
# snapshot: three ORM queries were a quarter of a core app's CPU). Not the payload, which
# nobody here shows.
_SNAPSHOT = """
SELECT a.id AS a_id, a.status AS a_status, a.deadline AS a_deadline, a.created_at AS a_created_at,
       q.id AS q_id, q.insurer_code, q.insurer_name, q.status AS q_status, q.reason, q.finished_at,
       o.id AS o_id, o.premium_kopecks, o.coefficients, o.insurer_reference, o.valid_until, o.created_at AS o_created_at
FROM application a
LEFT JOIN quote q ON q.application_id = a.id
LEFT JOIN offer o ON o.quote_id = q.id
WHERE a.id = $1
ORDER BY q.insurer_code
"""


async def reload_snapshot(
    application_id: uuid.UUID, connection: BaseDBAsyncClient | None = None
) -> ApplicationSnapshot | None:
    """The application as stored, from the primary unless ``connection`` says otherwise (the
    replica, for a GET that accepts only a complete answer from it: never for a socket's
    opening snapshot, see ``shared.platform.replica``)."""
    SNAPSHOT_READS.inc()
    _, rows = await (connection or Tortoise.get_connection("default")).execute_query(_SNAPSHOT, [application_id])
    if not rows:
        return None
    first = rows[0]
    application = Application(
        id=first["a_id"],
        status=ApplicationStatus(first["a_status"]),
        deadline=first["a_deadline"],
        created_at=first["a_created_at"],
    )
    quotes: list[Quote] = []
    offers: list[Offer] = []
    for row in rows:
        if row["q_id"] is None:
            continue  # an application without quotes (none enabled): one row of NULLs
        quotes.append(
            Quote(
                id=row["q_id"],
                application_id=application.id,
                insurer_code=row["insurer_code"],
                insurer_name=row["insurer_name"],
                status=QuoteStatus(row["q_status"]),
                reason=row["reason"],
                finished_at=row["finished_at"],
            )
        )
        if row["o_id"] is not None:
            offers.append(
                Offer(
                    id=row["o_id"],
                    quote_id=row["q_id"],
                    application_id=application.id,
                    insurer_code=row["insurer_code"],
                    premium_kopecks=row["premium_kopecks"],
                    coefficients=json.loads(row["coefficients"]),
                    insurer_reference=row["insurer_reference"],
                    valid_until=row["valid_until"],
                    created_at=row["o_created_at"],
                )
            )
    return ApplicationSnapshot(application, quotes, offers)
