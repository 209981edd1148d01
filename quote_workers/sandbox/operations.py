"""Background calculations of the submit-then-poll protocol, with bounded lifetime and count."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from .behaviour import Action
from .issuance import Draft, Policy
from .model import Priced, Refused

# Operations live this long after submission; then they are forgotten (bounded memory).
OPERATION_TTL_S = 300.0
MAX_OPERATIONS = 200_000


@dataclass(slots=True)
class Operation:
    company: str
    created: float
    ready_at: float
    action: Action
    answer: Priced | Draft | Policy | Refused | None  # None for a fault
    # Which resource the operation belongs to: polled only under its own path.
    kind: Literal["quote", "final_calculation", "issuance"] = "quote"


class Operations:
    """Operations by id, oldest first, so expiry only looks at the head."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, Operation] = OrderedDict()

    def add(self, operation: Operation) -> str:
        self._expire(operation.created)
        op_id = secrets.token_hex(12)
        self._items[op_id] = operation
        return op_id

    def get(self, op_id: str, now: float) -> Operation | None:
        operation = self._items.get(op_id)
        if operation is None or now - operation.created > OPERATION_TTL_S:
            return None
        return operation

    def _expire(self, now: float) -> None:
        items = self._items
        while items:
            oldest = next(iter(items.values()))
            if now - oldest.created <= OPERATION_TTL_S and len(items) < MAX_OPERATIONS:
                break
            items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
