"""Synthetic applications (no real person's data)."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from typing import Any

from shared.platform.clock import moscow_today

# The worked example of the domain notes (Moscow, 35 years / 10 years, class 13, 150 hp,
# 12 months): premium 9441.80 at the first sandbox insurer's base rate.
WORKED_EXAMPLE_COEFFICIENTS: dict[str, str] = {
    "TB": "8665",
    "KT": "1.80",
    "KBM": "0.46",
    "KVS": "0.94",
    "KO": "1",
    "KM": "1.4",
    "KS": "1",
    "KN": "1",
}

_SAMPLE: dict[str, Any] = {
    "vehicle": {
        "category": "B",
        "make": "Toyota",
        "model": "Camry",
        "year": 2019,
        "power_hp": 181,
        "vin": "XW7BF4FK60S123456",
        "plate": "А123ВС777",
        "purpose": "personal",
        "document": {"type": "sts", "series": "77ХХ", "number": "123456", "issued": "2019-05-01"},
    },
    "owner": {
        "last_name": "Иванов",
        "first_name": "Иван",
        "middle_name": "Иванович",
        "birth_date": "1985-03-14",
        "passport": {"series": "4510", "number": "123456", "issued": "2015-04-01"},
        "registration": {"region_code": "77", "city": "Москва"},
    },
    "drivers": [
        {
            "last_name": "Иванов",
            "first_name": "Иван",
            "middle_name": "Иванович",
            "birth_date": "1985-03-14",
            "license": {"series": "7701", "number": "123456", "issued": "2005-06-01"},
            "experience_since": "2005-06-01",
        }
    ],
    "unlimited_drivers": False,
    "period": {"start_date": "", "months": 12},
}


def sample_application(today: date | None = None, *, start_in_days: int = 7) -> dict[str, Any]:
    body = copy.deepcopy(_SAMPLE)
    body["period"]["start_date"] = ((today or moscow_today()) + timedelta(days=start_in_days)).isoformat()
    return body
