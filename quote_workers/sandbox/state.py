"""One sandbox's in-memory state: companies, their behaviours, the KBM register, answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator, Mapping

from aiohttp import web

from .behaviour import Behaviour
from .companies import BY_CODE, Company
from .issuance import BackOffice
from .kbm import KbmRegister
from .operations import Operations
from .pricing import Quoter


class CallsAtOnce:
    """Calls each company is answering at this moment, and the most it ever answered at once
    (a client's concurrency bound shows here)."""

    def __init__(self) -> None:
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()

    @contextlib.contextmanager
    def counting(self, company_code: str) -> Iterator[None]:
        self.now[company_code] += 1
        self.peak[company_code] = max(self.peak[company_code], self.now[company_code])
        try:
            yield
        finally:
            self.now[company_code] -= 1


class Sandbox:
    def __init__(self, companies: Mapping[str, Company] = BY_CODE) -> None:
        self.companies = companies
        self.kbm = KbmRegister()
        self.quoter = Quoter(self.kbm)
        self.operations = Operations()
        self.back_office = BackOffice(self.quoter)
        self.behaviours: dict[str, Behaviour] = {}
        self.reset_behaviours()
        # Set at shutdown so hanging and sleeping handlers let go at once.
        self.closing = asyncio.Event()
        self.calls_at_once = CallsAtOnce()
        self.hanging = 0  # handlers currently in "hang" (visible in /sandbox/stats: no leaks)

    def default_behaviour(self, company: Company) -> Behaviour:
        return Behaviour.default(company.latency_ms)

    def reset_behaviours(self) -> None:
        self.behaviours = {code: self.default_behaviour(c) for code, c in self.companies.items()}

    def operations_count(self) -> int:
        return len(self.operations)

    def company_or_404(self, code: str, protocol: str | None = None) -> Company:
        company = self.companies.get(code)
        if company is None or (protocol is not None and company.protocol != protocol):
            raise web.HTTPNotFound(text='{"error": {"code": "unknown_insurer"}}', content_type="application/json")
        return company


SANDBOX_KEY = web.AppKey("sandbox", Sandbox)
