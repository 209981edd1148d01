"""The insurers this aggregator is connected to: code, display name and API protocol.

Adapters (how to talk to each protocol) live in ``quote_workers.adapters``; this
catalogue is what the aggregator needs to create one quote per insurer and what a
worker needs to pick an adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Protocol = Literal["json", "poll", "xml"]


@dataclass(frozen=True, slots=True)
class InsurerInfo:
    code: str
    name: str
    protocol: Protocol


CATALOGUE: tuple[InsurerInfo, ...] = (
    InsurerInfo("sever", "Северная страховая", "json"),
    InsurerInfo("volga", "Волга-Гарант", "poll"),
    InsurerInfo("ural", "Уральский щит", "xml"),
    InsurerInfo("baikal", "Байкал-Полис", "json"),
    InsurerInfo("neva", "Нева Страхование", "poll"),
    InsurerInfo("kama", "Кама-Резерв", "xml"),
    InsurerInfo("altai", "Алтай Ассистанс", "json"),
    InsurerInfo("oka", "Ока-Авто", "poll"),
    InsurerInfo("don", "Донская страховая", "xml"),
    InsurerInfo("amur", "Амур-Мотор", "json"),
)

BY_CODE: dict[str, InsurerInfo] = {insurer.code: insurer for insurer in CATALOGUE}


def select(codes: tuple[str, ...]) -> tuple[InsurerInfo, ...]:
    """The insurers named by ``codes`` (all of them when empty); unknown codes raise ValueError."""
    if not codes:
        return CATALOGUE
    unknown = [code for code in codes if code not in BY_CODE]
    if unknown:
        raise ValueError(f"unknown insurer code {unknown[0]!r}; known: {', '.join(BY_CODE)}")
    return tuple(BY_CODE[code] for code in codes)
