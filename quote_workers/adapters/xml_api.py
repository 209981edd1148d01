"""Adapter for insurers with a SOAP-style XML API (the sandbox's ``/xml/{code}/soap``).

The request is an envelope built from escaped strings; the answer is parsed with defusedxml (no
DTDs, no entity expansion: insurer XML is untrusted). A SOAP Fault says whose fault it was:
``Client`` faults are permanent, ``Server`` faults transient.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape, quoteattr

import aiohttp
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from shared.quoting.insurers import InsurerInfo

from ._common import (
    ApplicationView,
    check_status,
    checked_offer,
    clean_reason,
    guarded,
    parse_timestamp,
    read_capped,
    view_application,
)
from .base import (
    InsurerAnswer,
    MalformedAnswerError,
    PermanentInsurerError,
    QuoteRequest,
    TransientInsurerError,
    declined,
)

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
CALC_NS = "urn:sandbox:osago:calc:1"
_S = "{" + SOAP_NS + "}"
_O = "{" + CALC_NS + "}"
SOAP_ACTION = "urn:sandbox:osago:calc:1#Calculate"


def _a(value: object) -> str:
    return quoteattr(str(value))


def request_envelope(app: ApplicationView, key: str) -> bytes:
    drivers = "".join(
        f"<o:Driver birthDate={_a(d.birth_date)} experienceSince={_a(d.experience_since)} licence={_a(d.licence)}/>"
        for d in app.drivers
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:o="{CALC_NS}">'
        f"<soap:Header><o:MessageID>{escape(key)}</o:MessageID></soap:Header>"
        "<soap:Body><o:CalculateRequest>"
        f"<o:Policy startDate={_a(app.start_date)} months={_a(app.months)}"
        f" unlimitedDrivers={_a('true' if app.unlimited else 'false')}/>"
        f"<o:Vehicle category={_a(app.category)} year={_a(app.year)} powerHp={_a(app.power_hp)}"
        f" purpose={_a(app.purpose)} make={_a(app.make)} model={_a(app.model)}/>"
        f"<o:Owner regionCode={_a(app.region_code)} city={_a(app.city)}"
        f" document={_a(app.owner_passport or '')}/>"
        f"<o:Drivers>{drivers}</o:Drivers>"
        "</o:CalculateRequest></soap:Body></soap:Envelope>"
    ).encode()


def _parse(raw: bytes) -> Element:
    try:
        root: Element = fromstring(raw, forbid_dtd=True)
        return root
    except DefusedXmlException:
        raise PermanentInsurerError("insurer answer uses forbidden XML features") from None
    except (ParseError, ValueError):
        raise MalformedAnswerError("insurer answer is not well-formed XML") from None


def _fault(fault: Element) -> PermanentInsurerError | TransientInsurerError:
    code = (fault.findtext("faultcode") or "").strip()
    if code.endswith(":Client") or code == "Client":
        return PermanentInsurerError("insurer rejected the request as invalid")
    return TransientInsurerError("insurer reported a server fault")


def interpret(status: int, raw: bytes) -> InsurerAnswer:
    if status >= 500:
        try:
            envelope = _parse(raw)
        except (PermanentInsurerError, TransientInsurerError):
            raise TransientInsurerError(f"insurer answered HTTP {status}") from None
        fault = envelope.find(f"{_S}Body/{_S}Fault")
        if fault is not None:
            raise _fault(fault)
    check_status(status)
    envelope = _parse(raw)
    if envelope.tag != _S + "Envelope":
        raise PermanentInsurerError("insurer answer is not a SOAP envelope")
    body = envelope.find(_S + "Body")
    if body is None:
        raise PermanentInsurerError("insurer answer has no SOAP body")
    fault = body.find(_S + "Fault")
    if fault is not None:
        raise _fault(fault)
    refusal = body.find(f"{_O}CalculateResponse/{_O}Refusal")
    if refusal is not None:
        return declined(clean_reason(refusal.text))
    calculation = body.find(f"{_O}CalculateResponse/{_O}Calculation")
    if calculation is None:
        raise PermanentInsurerError("insurer answer has neither a calculation nor a refusal")
    premium = calculation.find(_O + "Premium")
    reference = calculation.get("reference")
    valid_until = calculation.get("validUntil")
    if premium is None or premium.text is None or reference is None or valid_until is None:
        raise PermanentInsurerError("calculation lacks premium, reference or validity")
    if premium.get("currency", "RUB") != "RUB":
        raise PermanentInsurerError("premium is not in roubles")
    factors: dict[str, str] = {}
    for factor in calculation.findall(f"{_O}Factors/{_O}Factor"):
        code, value = factor.get("code"), factor.get("value")
        if code is None or value is None or code in factors or len(factors) >= 16:
            raise PermanentInsurerError("coefficient breakdown is malformed")
        factors[code] = value
    return checked_offer(premium.text.strip(), factors, reference, parse_timestamp(valid_until))


class XmlApiAdapter:
    def __init__(self, insurer: InsurerInfo, session: aiohttp.ClientSession, base_url: str) -> None:
        self.insurer = insurer
        self._session = session
        self._url = f"{base_url.rstrip('/')}/xml/{insurer.code}/soap"

    async def request_quote(self, request: QuoteRequest, *, timeout: float) -> InsurerAnswer:
        envelope = request_envelope(view_application(request.application), request.quote_id)
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": SOAP_ACTION}
        async with guarded(timeout):
            async with self._session.post(self._url, data=envelope, headers=headers) as response:
                status = response.status
                raw = await read_capped(response)
        return interpret(status, raw)
