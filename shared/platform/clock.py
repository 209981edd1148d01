"""Time: Moscow's "today" for every date rule of the contract, and UTC timestamps in bodies."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

MOSCOW = ZoneInfo("Europe/Moscow")


def moscow_today() -> date:
    """The current date in Moscow (not the server's local date)."""
    return datetime.now(MOSCOW).date()


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    """ISO-8601 UTC with ``Z`` and milliseconds, the shape of every timestamp in our bodies."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
