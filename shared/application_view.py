"""Reading one application back: the GET body of API.md and the events to replay."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from shared.events import offer_body, stored_events
from shared.models import Application, Offer, Quote, QuoteStatus
from shared.timefmt import iso_utc


def parse_application_id(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


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
                    **offer_body(o),
                }
                for o in offers
            ],
        }

    def events(self) -> list[dict[str, Any]]:
        return stored_events(self.application, self.quotes, self.offers)


async def load_snapshot(application: Application) -> ApplicationSnapshot:
    quotes = await Quote.filter(application_id=application.id).order_by("insurer_code")
    offers = await Offer.filter(application_id=application.id)
    return ApplicationSnapshot(application, list(quotes), list(offers))


async def load_snapshots(applications: list[Application]) -> list[ApplicationSnapshot]:
    """Snapshots of many applications in two queries (a list page), in the order given."""
    ids = [application.id for application in applications]
    quotes: dict[uuid.UUID, list[Quote]] = {application_id: [] for application_id in ids}
    offers: dict[uuid.UUID, list[Offer]] = {application_id: [] for application_id in ids}
    if ids:
        for quote in await Quote.filter(application_id__in=ids).order_by("insurer_code"):
            quotes[quote.application_id].append(quote)
        for offer in await Offer.filter(application_id__in=ids):
            offers[offer.application_id].append(offer)
    return [ApplicationSnapshot(a, quotes[a.id], offers[a.id]) for a in applications]


# What a snapshot reads of the application row: not the payload, which nobody here shows.
_SNAPSHOT_COLUMNS = ("id", "status", "deadline", "created_at")


async def reload_snapshot(application_id: uuid.UUID) -> ApplicationSnapshot | None:
    application = await Application.filter(id=application_id).only(*_SNAPSHOT_COLUMNS).first()
    return None if application is None else await load_snapshot(application)
