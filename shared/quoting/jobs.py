"""A quote job: what a worker is sent for one insurer's share of an application (ids only, no personal data)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aio_pika

from shared.platform.amqp import JSON_CONTENT_TYPE

JOB_SCHEMA_VERSION = 1


class MalformedJob(ValueError):
    """The message body is not a quote job this version understands."""


@dataclass(frozen=True, slots=True)
class QuoteJob:
    quote_id: str
    application_id: str
    insurer_code: str
    deadline_epoch: float  # seconds since the epoch, UTC

    @property
    def quote_uuid(self) -> uuid.UUID:
        return uuid.UUID(self.quote_id)  # checked by from_body

    def remaining(self, now: float | None = None) -> float:
        return self.deadline_epoch - (time.time() if now is None else now)

    def to_message(self, now: float | None = None) -> aio_pika.Message:
        body = json.dumps(
            {
                "v": JOB_SCHEMA_VERSION,
                "quote_id": self.quote_id,
                "application_id": self.application_id,
                "insurer": self.insurer_code,
                "deadline": self.deadline_epoch,
            },
            separators=(",", ":"),
        ).encode()
        # A job published late by the outbox relay expires at the application's deadline,
        # not a full queue TTL after publication.
        remaining_ms = max(0, int(self.remaining(now) * 1000))
        return aio_pika.Message(
            body,
            content_type=JSON_CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=self.quote_id,
            expiration=remaining_ms / 1000,
        )

    @classmethod
    def from_body(cls, body: bytes) -> QuoteJob:
        try:
            data = json.loads(body)
            if not isinstance(data, dict) or data.get("v") != JOB_SCHEMA_VERSION:
                raise MalformedJob("unknown job schema version")
            job = cls(
                quote_id=_require_str(data, "quote_id"),
                application_id=_require_str(data, "application_id"),
                insurer_code=_require_str(data, "insurer"),
                deadline_epoch=float(data["deadline"]),
            )
            uuid.UUID(job.quote_id)
            uuid.UUID(job.application_id)
            return job
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedJob(str(exc)) from None


def _require_str(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise MalformedJob(f"{key} must be a non-empty string")
    return value
