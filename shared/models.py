"""The database schema (osago-db). Changed only through migrations in ``migrations/``.

Unique constraints carry the invariants, so no race can store a duplicate: one quote
per insurer per application, one offer per quote, one application per idempotency key
of a client.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class ApplicationStatus(StrEnum):
    PENDING = "pending"
    COMPLETE = "complete"


class QuoteStatus(StrEnum):
    PENDING = "pending"
    OFFERED = "offered"
    DECLINED = "declined"
    FAILED = "failed"
    UNAVAILABLE = "unavailable"
    TIMED_OUT = "timed_out"


FINAL_QUOTE_STATUSES: tuple[QuoteStatus, ...] = tuple(s for s in QuoteStatus if s is not QuoteStatus.PENDING)


class IndexWhere(Index):
    """A B-tree index of only the rows ``where`` (SQL) holds: what a periodic query looks for.

    The periodic queries (outbox relay, deadline sweeper) run every second on every aggregator
    and want a few hundred rows out of millions; an index of just those rows stays that small.
    The query must repeat the predicate word for word, so that PostgreSQL can prove it implies
    the index's (the predicate is SQL text, never a parameter). Tortoise's own ``PartialIndex``
    takes equalities only; aerich stores and diffs the predicate as the index's ``extra``.
    """

    def __init__(self, *, fields: tuple[str, ...], name: str, where: str) -> None:
        super().__init__(fields=fields, name=name)
        self.where = where
        self.extra = f" WHERE {where}"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        path, args, kwargs = super().deconstruct()
        return path, args, {**kwargs, "where": self.where}


class Partner(Model):
    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=100)
    # SHA-256 of the API key: the key itself is shown once and never stored.
    api_key_hash = fields.CharField(max_length=64, unique=True)
    requests_per_second = fields.FloatField()
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "partner"


class Application(Model):
    id = fields.UUIDField(primary_key=True)
    status = fields.CharEnumField(ApplicationStatus, max_length=16, default=ApplicationStatus.PENDING)
    partner: fields.ForeignKeyNullableRelation[Partner] = fields.ForeignKeyField(
        "models.Partner", related_name="applications", null=True, on_delete=fields.RESTRICT
    )
    partner_id: uuid.UUID | None
    # Who may replay an Idempotency-Key: "partner:<id>", "browser:<address>" or "service".
    client_scope = fields.CharField(max_length=80)
    idempotency_key = fields.CharField(max_length=255, null=True)
    # SHA-256 of the canonical request body: a repeated key with another body is a 409.
    # NULL with the key once the application is erased (aggregator_api.retention).
    request_fingerprint = fields.CharField(max_length=64, null=True)
    # The validated, normalised request (API.md POST body shape).
    payload: dict[str, Any] = fields.JSONField()
    vin = fields.CharField(max_length=17, null=True, db_index=True)
    plate = fields.CharField(max_length=12, null=True, db_index=True)
    region_code = fields.CharField(max_length=3)
    deadline = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)
    completed_at = fields.DatetimeField(null=True)
    # Outbox flag for the "complete" event.
    complete_event_published = fields.BooleanField(default=False)
    # Quotes not final yet: the finalize that takes it to zero completes the application. A
    # counter updated under the row lock lets that be one statement, without a transaction.
    pending_quotes = fields.SmallIntField(default=0)
    # When the personal data was erased past OSAGO_RETENTION_DAYS (aggregator_api.retention):
    # the payload keeps what statistics need; VIN, plate, idempotency key and fingerprint NULL.
    erased_at = fields.DatetimeField(null=True)

    quotes: fields.ReverseRelation[Quote]
    offers: fields.ReverseRelation[Offer]

    class Meta:
        table = "application"
        unique_together = (("client_scope", "idempotency_key"),)
        indexes = (
            ("partner_id", "created_at"),
            # The deadline sweeper (aggregator_api.deadlines.OVERDUE_QUOTES).
            IndexWhere(fields=("deadline",), name="idx_application_pending_deadline", where="status = 'pending'"),
            # The outbox relay's complete events (aggregator_api.outbox.COMPLETE_EVENTS_TO_RELAY).
            IndexWhere(
                fields=("completed_at",),
                name="idx_application_complete_unpublished",
                where="status = 'complete' AND NOT complete_event_published",
            ),
            # The retention job (aggregator_api.retention.ERASE_BATCH).
            IndexWhere(fields=("created_at",), name="idx_application_unerased_created", where="erased_at IS NULL"),
        )


class Quote(Model):
    """One insurer's share of one application; its status is final exactly once."""

    id = fields.UUIDField(primary_key=True)
    application: fields.ForeignKeyRelation[Application] = fields.ForeignKeyField(
        "models.Application", related_name="quotes", on_delete=fields.CASCADE
    )
    application_id: uuid.UUID
    insurer_code = fields.CharField(max_length=32)
    insurer_name = fields.CharField(max_length=100)
    status = fields.CharEnumField(QuoteStatus, max_length=16, default=QuoteStatus.PENDING)
    reason = fields.TextField(null=True)
    attempts = fields.IntField(default=0)
    last_error = fields.TextField(null=True)
    # Outbox flags: the job reached the broker / the final event reached the broker.
    job_published = fields.BooleanField(default=False)
    event_published = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "quote"
        unique_together = (("application", "insurer_code"),)
        indexes = (
            # The outbox relay's jobs and final events (aggregator_api.outbox.JOBS_TO_RELAY,
            # QUOTE_EVENTS_TO_RELAY). A quote that ended before its job reached the broker
            # (an outage) has nothing left to publish, so it leaves the first index too.
            IndexWhere(
                fields=("created_at",),
                name="idx_quote_job_unpublished",
                where="status = 'pending' AND NOT job_published",
            ),
            IndexWhere(
                fields=("finished_at",),
                name="idx_quote_event_unpublished",
                where="status <> 'pending' AND NOT event_published",
            ),
        )


class Offer(Model):
    id = fields.UUIDField(primary_key=True)
    quote: fields.OneToOneRelation[Quote] = fields.OneToOneField(
        "models.Quote", related_name="offer", on_delete=fields.CASCADE
    )
    quote_id: uuid.UUID
    application: fields.ForeignKeyRelation[Application] = fields.ForeignKeyField(
        "models.Application", related_name="offers", on_delete=fields.CASCADE
    )
    application_id: uuid.UUID
    insurer_code = fields.CharField(max_length=32)
    premium_kopecks = fields.BigIntField()
    coefficients: dict[str, str] = fields.JSONField()
    insurer_reference = fields.CharField(max_length=100)
    valid_until = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "offer"
        unique_together = (("application", "insurer_code"),)
