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
    request_fingerprint = fields.CharField(max_length=64)
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

    quotes: fields.ReverseRelation[Quote]
    offers: fields.ReverseRelation[Offer]

    class Meta:
        table = "application"
        unique_together = (("client_scope", "idempotency_key"),)
        indexes = (("status", "deadline"), ("partner_id", "created_at"))


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
        indexes = (("job_published", "created_at"), ("event_published", "finished_at"))


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
