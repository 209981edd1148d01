"""Amounts as the provider takes them (kopecks or a decimal string) and as Russians read them."""

from __future__ import annotations

import re
from decimal import Decimal

_DECIMAL_ROUBLES = re.compile(r"(0|[1-9][0-9]{0,8})\.[0-9]{2}")
# Russian typography: groups of three digits split by a no-break space, a decimal comma, and
# the rouble sign after a no-break space, so the amount never wraps across lines.
NBSP = "\u00a0"


def kopecks_from_decimal(raw: str) -> int:
    """``"9441.80"`` → 944180; exactly two decimal places, no sign, no exponent."""
    if not _DECIMAL_ROUBLES.fullmatch(raw):
        raise ValueError('amount must be roubles with two decimal places, e.g. "9441.80"')
    return int(Decimal(raw) * 100)


def decimal_from_kopecks(kopecks: int) -> str:
    return f"{kopecks // 100}.{kopecks % 100:02d}"


def format_rub(kopecks: int) -> str:
    """944180 → "9 441,80 ₽" (with no-break spaces)."""
    roubles = f"{kopecks // 100:,}".replace(",", NBSP)
    return f"{roubles},{kopecks % 100:02d}{NBSP}₽"
