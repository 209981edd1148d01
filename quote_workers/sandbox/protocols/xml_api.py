"""SOAP-style XML insurer API: an envelope in, an envelope with a calculation, refusal or Fault out.

POST /xml/{code}/soap          Content-Type: text/xml; charset=utf-8
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
               xmlns:o="urn:sandbox:osago:calc:1">
  <soap:Header><o:MessageID>idempotency key</o:MessageID></soap:Header>
  <soap:Body><o:CalculateRequest>
    <o:Policy startDate="2026-12-01" months="12" unlimitedDrivers="false"/>
    <o:Vehicle category="B" year="2019" powerHp="181" purpose="personal"
               make="Toyota" model="Camry"/>
    <o:Owner regionCode="77" city="Москва" document=""/>
    <o:Drivers><o:Driver birthDate="1985-03-14" experienceSince="2005-06-01"
                         licence="7701123456"/></o:Drivers>
  </o:CalculateRequest></soap:Body>
</soap:Envelope>

200 ... <o:CalculateResponse><o:Calculation reference="URL-2026-1234567"
          validUntil="2026-12-04T12:00:00Z" tariff="...">
          <o:Premium currency="RUB">9441.80</o:Premium>
          <o:Factors><o:Factor code="TB" value="8665"/>...</o:Factors>
        </o:Calculation></o:CalculateResponse> ...
200 ... <o:CalculateResponse><o:Refusal code="VEHICLE_AGE">reason</o:Refusal></o:CalculateResponse>
500 ... <soap:Fault><faultcode>soap:Server|soap:Client</faultcode><faultstring>..</faultstring></soap:Fault>
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from ..model import Applicant, BadRequest, DriverIn, Priced, check_applicant, parse_date
from ..state import SANDBOX_KEY
from .common import misbehave, read_body, utc_z

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
CALC_NS = "urn:sandbox:osago:calc:1"
_S = "{" + SOAP_NS + "}"
_O = "{" + CALC_NS + "}"

_HEAD = f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:o="{CALC_NS}"><soap:Body>'
_TAIL = "</soap:Body></soap:Envelope>"


def _xml(inner: str, status: int = 200) -> web.Response:
    return web.Response(body=(_HEAD + inner + _TAIL).encode(), status=status, content_type="text/xml", charset="utf-8")


def _fault(side: str, message: str) -> web.Response:
    # SOAP 1.1: every Fault travels with HTTP 500; the faultcode says whose fault it is.
    return _xml(
        f"<soap:Fault><faultcode>soap:{side}</faultcode><faultstring>{escape(message)}</faultstring></soap:Fault>",
        500,
    )


def _attr(element: Element | None, name: str, where: str) -> str:
    if element is None:
        raise BadRequest(f"{where} is missing")
    value = element.get(name)
    if value is None:
        raise BadRequest(f"{where}/@{name} is missing")
    return value


def _int(element: Element | None, name: str, where: str) -> int:
    raw = _attr(element, name, where)
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        raise BadRequest(f"{where}/@{name} must be a whole number")
    return int(raw)


def _bool(element: Element | None, name: str, where: str) -> bool:
    raw = _attr(element, name, where)
    if raw not in ("true", "false"):
        raise BadRequest(f"{where}/@{name} must be true or false")
    return raw == "true"


def parse(raw: bytes) -> tuple[Applicant, str | None]:
    try:
        envelope = fromstring(raw, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError):
        raise BadRequest("not a well-formed envelope") from None
    if envelope.tag != _S + "Envelope":
        raise BadRequest("not a SOAP envelope")
    message_id = envelope.findtext(f"{_S}Header/{_O}MessageID")
    calc = envelope.find(f"{_S}Body/{_O}CalculateRequest")
    if calc is None:
        raise BadRequest("CalculateRequest is missing")
    policy = calc.find(_O + "Policy")
    vehicle = calc.find(_O + "Vehicle")
    owner = calc.find(_O + "Owner")
    drivers = calc.findall(f"{_O}Drivers/{_O}Driver")
    purpose = _attr(vehicle, "purpose", "Vehicle")
    if purpose not in ("personal", "taxi"):
        raise BadRequest("Vehicle/@purpose must be personal or taxi")
    document = owner.get("document") if owner is not None else None
    applicant = check_applicant(
        Applicant(
            start_date=parse_date(_attr(policy, "startDate", "Policy")),
            months=_int(policy, "months", "Policy"),
            category=_attr(vehicle, "category", "Vehicle"),
            year=_int(vehicle, "year", "Vehicle"),
            power_hp=_int(vehicle, "powerHp", "Vehicle"),
            purpose="taxi" if purpose == "taxi" else "personal",
            region_code=_attr(owner, "regionCode", "Owner"),
            city=_attr(owner, "city", "Owner"),
            unlimited=_bool(policy, "unlimitedDrivers", "Policy"),
            owner_document=document or None,
            drivers=tuple(
                DriverIn(
                    parse_date(_attr(d, "birthDate", "Driver")),
                    parse_date(_attr(d, "experienceSince", "Driver")),
                    _attr(d, "licence", "Driver"),
                )
                for d in drivers[:6]
            ),
        )
    )
    key = message_id.strip() if message_id else None
    return applicant, key or None


# An envelope cut off mid-element.
MALFORMED = (_HEAD + '<o:CalculateResponse><o:Calculation reference="X"><o:Premium>94').encode()


def _refusal(code: str, reason: str) -> web.Response:
    return _xml(
        f"<o:CalculateResponse><o:Refusal code={quoteattr(code)}>{escape(reason)}</o:Refusal></o:CalculateResponse>"
    )


async def calculate(request: web.Request) -> web.StreamResponse:
    sandbox = request.app[SANDBOX_KEY]
    company = sandbox.company_or_404(request.match_info["code"], "xml")
    try:
        applicant, key = parse(await read_body(request))
    except BadRequest as error:
        return _fault("Client", str(error))
    action = sandbox.behaviours[company.code].roll()
    fault = await misbehave(sandbox, request, action, company.code)
    if fault is not None:
        return fault
    if action.kind == "error":
        return _fault("Server", "Сервис расчёта временно недоступен")
    if action.kind == "malformed":
        return web.Response(body=MALFORMED, content_type="text/xml", charset="utf-8")
    if action.kind == "refuse":
        return _refusal("DECLINED", action.reason)
    answer = sandbox.quoter.quote(company, applicant, key)
    if not isinstance(answer, Priced):
        return _refusal(answer.code, answer.reason)
    factors = "".join(
        f"<o:Factor code={quoteattr(code)} value={quoteattr(value)}/>" for code, value in answer.coefficients.items()
    )
    return _xml(
        "<o:CalculateResponse>"
        f'<o:Calculation reference={quoteattr(answer.reference)} validUntil="{utc_z(answer.valid_until)}"'
        f" tariff={quoteattr(answer.tables_version)}>"
        f'<o:Premium currency="RUB">{answer.premium}</o:Premium>'
        f"<o:Factors>{factors}</o:Factors>"
        "</o:Calculation></o:CalculateResponse>"
    )


def setup(app: web.Application) -> None:
    app.router.add_post("/xml/{code}/soap", calculate)
