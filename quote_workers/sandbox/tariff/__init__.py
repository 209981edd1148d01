"""OSAGO tariff engine: the Bank of Russia formula over dated tables, pure and Decimal-only.

Used by the insurer sandbox to price applications the way a real insurer does: the insurer picks
its base rate (TB) inside the corridor, everything else comes from the tables in force on the
policy start date.
"""

from .formula import (
    COEFFICIENT_ORDER,
    MAX_NAMED_DRIVERS,
    DriverFacts,
    PriceBreakdown,
    TariffInput,
    full_years,
    kbm_coefficient,
    kvs_coefficient,
    normalize_city,
    normalize_region_code,
    period_coefficient,
    power_coefficient,
    price,
    tb_corridor,
    territory_coefficient,
)
from .tables import (
    KBM_CLASSES,
    KBM_DEFAULT_CLASS,
    VERSIONS,
    TariffError,
    TariffTables,
    tables_for,
)

__all__ = [
    "COEFFICIENT_ORDER",
    "KBM_CLASSES",
    "KBM_DEFAULT_CLASS",
    "MAX_NAMED_DRIVERS",
    "VERSIONS",
    "DriverFacts",
    "PriceBreakdown",
    "TariffError",
    "TariffInput",
    "TariffTables",
    "full_years",
    "kbm_coefficient",
    "kvs_coefficient",
    "normalize_city",
    "normalize_region_code",
    "period_coefficient",
    "power_coefficient",
    "price",
    "tables_for",
    "tb_corridor",
    "territory_coefficient",
]
