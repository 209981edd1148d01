"""The bonus-malus register: the insurers' shared database of drivers' KBM classes.

Real insurers look a driver's class up in RSA's AIS by licence (or, for unlimited drivers, the
owner's passport). Here tests can set a class; any other document gets a class derived from a
hash of it, so the same driver has the same class at every sandbox insurer and across restarts.
"""

from __future__ import annotations

import bisect
import hashlib

CLASSES: tuple[str, ...] = ("M", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13")

# Share of drivers per class, in per mille, in CLASSES order. Roughly what the market looks like:
# a quarter at the best class, most between 3 (newcomers) and 13, few with accidents (M..2).
_PER_MILLE: tuple[int, ...] = (5, 5, 10, 20, 120, 80, 70, 70, 60, 60, 60, 60, 60, 60, 260)
assert sum(_PER_MILLE) == 1000 and len(_PER_MILLE) == len(CLASSES)
_UPPER_BOUNDS: tuple[int, ...] = tuple(sum(_PER_MILLE[: i + 1]) for i in range(len(_PER_MILLE)))

MAX_DOCUMENT_LENGTH = 32


def normalise_document(raw: str) -> str:
    """Series + number as given, spaces removed, upper-cased (so "77 01 123456" = "7701123456")."""
    return "".join(raw.split()).upper()


def normalise_class(raw: object) -> str | None:
    """The class as stored ("M", "0".."13"), or None when ``raw`` is not a class."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        raw = str(raw)
    if not isinstance(raw, str):
        return None
    cleaned = raw.strip()
    if cleaned in ("m", "М", "м"):  # Latin or Cyrillic M, either case
        cleaned = "M"
    return cleaned if cleaned in CLASSES else None


def derived_class(document: str) -> str:
    """A stable class for a document nobody registered: the same everywhere, every time."""
    digest = hashlib.blake2b(document.encode(), digest_size=8).digest()
    bucket = int.from_bytes(digest, "big") % 1000
    return CLASSES[bisect.bisect_right(_UPPER_BOUNDS, bucket)]


class KbmRegister:
    """Classes set through the control API, in memory until the sandbox restarts."""

    def __init__(self) -> None:
        self._classes: dict[str, str] = {}

    def set(self, document: str, kbm_class: str) -> None:
        self._classes[normalise_document(document)] = kbm_class

    def delete(self, document: str) -> bool:
        return self._classes.pop(normalise_document(document), None) is not None

    def lookup(self, document: str) -> tuple[str, bool]:
        """(class, registered?) for a document."""
        key = normalise_document(document)
        registered = self._classes.get(key)
        if registered is not None:
            return registered, True
        return derived_class(key), False

    def class_of(self, document: str) -> str:
        return self.lookup(document)[0]

    def clear(self) -> None:
        self._classes.clear()
