"""Moscow time: "today" for every date rule of the contract."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

MOSCOW = ZoneInfo("Europe/Moscow")


def moscow_today() -> date:
    """The current date in Moscow (not the server's local date)."""
    return datetime.now(MOSCOW).date()
