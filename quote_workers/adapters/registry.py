"""Which adapter speaks to which insurer: one class per protocol in the catalogue."""

from __future__ import annotations

import aiohttp

from shared.quoting.insurers import InsurerInfo

from .base import InsurerAdapter
from .json_api import JsonApiAdapter
from .poll_api import PollApiAdapter
from .xml_api import XmlApiAdapter

ADAPTERS: dict[str, type[JsonApiAdapter] | type[PollApiAdapter] | type[XmlApiAdapter]] = {
    "json": JsonApiAdapter,
    "poll": PollApiAdapter,
    "xml": XmlApiAdapter,
}


def build_adapter(insurer: InsurerInfo, session: aiohttp.ClientSession, base_url: str) -> InsurerAdapter:
    """The adapter for ``insurer``'s protocol, talking to ``base_url`` through ``session``."""
    try:
        adapter_class = ADAPTERS[insurer.protocol]
    except KeyError:
        raise ValueError(f"no adapter for protocol {insurer.protocol!r} of insurer {insurer.code!r}") from None
    return adapter_class(insurer, session, base_url)
