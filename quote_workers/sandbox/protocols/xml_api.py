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

The same endpoint takes two more operations (the first element of the Body names it).

Final calculation (the issuance behaviour applies; idempotent by the order id):

  <soap:Body><o:FinalCalculateRequest orderId="<the system's order id, 1..100 ASCII>">
    <o:Policy .../><o:Vehicle .../><o:Owner .../><o:Drivers>...</o:Drivers>  (as CalculateRequest)
  </o:FinalCalculateRequest></soap:Body>

200 ... <o:FinalCalculateResponse><o:Draft id="URL-D-4F1A9C2B7E30" orderId="..."
          validUntil="...Z"><o:Premium currency="RUB">9725.05</o:Premium>
          <o:QuotedPremium currency="RUB">9441.80</o:QuotedPremium></o:Draft>
        </o:FinalCalculateResponse> ...
200 ... <o:FinalCalculateResponse><o:Refusal code="DECLINED">reason</o:Refusal></o:FinalCalculateResponse>

Issuance:

  <soap:Body><o:IssueRequest draftId="URL-D-..." orderId="..." paymentReference="..."/></soap:Body>

200 ... <o:IssueResponse><o:Policy series="ХХХ" number="0123456789" issuedAt="...Z"
          startsOn="2026-12-01" endsOn="2027-11-30" draftId="..." orderId="..."
          paymentReference="..."><o:Premium currency="RUB">9725.05</o:Premium></o:Policy>
        </o:IssueResponse> ...
200 ... <o:IssueResponse><o:Refusal code="DECLINED">reason</o:Refusal></o:IssueResponse>
500 ... <soap:Fault><faultcode>soap:Client</faultcode><faultstring>already_issued</faultstring>
          <detail><o:Error code="already_issued"/><o:Policy .../></detail></soap:Fault>
        a second issuance for the same order id: nothing new is issued, the first policy is in
        the detail; likewise faultstring/code unknown_draft or draft_mismatch (no Policy).
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from ..companies import Company
from ..issuance import AlreadyIssued, Draft, DraftMismatch, Policy, UnknownDraft, check_order_id
from ..model import Applicant, BadRequest, DriverIn, Priced, check_applicant, parse_date
from ..state import SANDBOX_KEY
from .common import misbehave, read_body, utc_z

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
CALC_NS = "urn:sandbox:osago:calc:1"
_S = "{" + SOAP_NS + "}"
_O = "{" + CALC_NS + "}"

_OPERATIONS = frozenset({_O + "CalculateRequest", _O + "FinalCalculateRequest", _O + "IssueRequest"})

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


def _envelope(raw: bytes) -> tuple[Element, str | None]:
    """The Body's operation element and the header's MessageID."""
    try:
        envelope = fromstring(raw, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError):
        raise BadRequest("not a well-formed envelope") from None
    if envelope.tag != _S + "Envelope":
        raise BadRequest("not a SOAP envelope")
    message_id = envelope.findtext(f"{_S}Header/{_O}MessageID")
    body = envelope.find(f"{_S}Body")
    operation = body[0] if body is not None and len(body) else None
    if operation is None or operation.tag not in _OPERATIONS:
        raise BadRequest("CalculateRequest is missing")
    key = message_id.strip() if message_id else None
    return operation, key or None


def parse(raw: bytes) -> tuple[Applicant, str | None]:
    operation, key = _envelope(raw)
    if operation.tag != _O + "CalculateRequest":
        raise BadRequest("CalculateRequest is missing")
    return _applicant(operation), key


def _applicant(calc: Element) -> Applicant:
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
    return applicant


# An envelope cut off mid-element.
MALFORMED = (_HEAD + '<o:CalculateResponse><o:Calculation reference="X"><o:Premium>94').encode()


def _refusal(code: str, reason: str, response: str = "CalculateResponse") -> web.Response:
    return _xml(f"<o:{response}><o:Refusal code={quoteattr(code)}>{escape(reason)}</o:Refusal></o:{response}>")


async def soap(request: web.Request) -> web.StreamResponse:
    sandbox = request.app[SANDBOX_KEY]
    company = sandbox.company_or_404(request.match_info["code"], "xml")
    try:
        operation, key = _envelope(await read_body(request))
    except BadRequest as error:
        return _fault("Client", str(error))
    if operation.tag == _O + "FinalCalculateRequest":
        return await final_calculate(request, company, operation)
    if operation.tag == _O + "IssueRequest":
        return await issue(request, company, operation)
    return await calculate(request, company, operation, key)


async def calculate(request: web.Request, company: Company, operation: Element, key: str | None) -> web.StreamResponse:
    sandbox = request.app[SANDBOX_KEY]
    try:
        applicant = _applicant(operation)
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


def _premium(tag: str, roubles: str) -> str:
    return f'<o:{tag} currency="RUB">{escape(roubles)}</o:{tag}>'


def _policy_xml(policy: Policy) -> str:
    return (
        f"<o:Policy series={quoteattr(policy.series)} number={quoteattr(policy.number)}"
        f' issuedAt="{utc_z(policy.issued_at)}" startsOn="{policy.starts_on.isoformat()}"'
        f' endsOn="{policy.ends_on.isoformat()}" draftId={quoteattr(policy.draft_id)}'
        f" orderId={quoteattr(policy.order_id)} paymentReference={quoteattr(policy.payment_reference)}>"
        f"{_premium('Premium', policy.premium)}</o:Policy>"
    )


def _client_fault(code: str, message: str, detail: str = "") -> web.Response:
    return _xml(
        f"<soap:Fault><faultcode>soap:Client</faultcode><faultstring>{escape(code)}</faultstring>"
        f"<detail><o:Error code={quoteattr(code)}>{escape(message)}</o:Error>{detail}</detail></soap:Fault>",
        500,
    )


def _short_attr(element: Element, name: str) -> str:
    value = _attr(element, name, element.tag.removeprefix(_O))
    if not 1 <= len(value) <= 100:
        raise BadRequest(f"@{name} must be 1..100 characters")
    return value


def _order_id(element: Element) -> str:
    try:
        return check_order_id(element.get("orderId"))
    except ValueError as error:
        raise BadRequest(f"@orderId: {error}") from None


async def final_calculate(request: web.Request, company: Company, operation: Element) -> web.StreamResponse:
    sandbox = request.app[SANDBOX_KEY]
    try:
        order_id = _order_id(operation)
        applicant = _applicant(operation)
    except BadRequest as error:
        return _fault("Client", str(error))
    behaviour = sandbox.behaviours[company.code].issue
    action = behaviour.roll()
    fault = await misbehave(sandbox, request, action, company.code)
    if fault is not None:
        return fault
    if action.kind == "error":
        return _fault("Server", "Сервис расчёта временно недоступен")
    if action.kind == "refuse":
        return _refusal("DECLINED", action.reason, "FinalCalculateResponse")
    answer = sandbox.back_office.final_calculation(company, applicant, order_id, behaviour.price_factor())
    if not isinstance(answer, Draft):
        return _refusal(answer.code, answer.reason, "FinalCalculateResponse")
    return _xml(
        f"<o:FinalCalculateResponse><o:Draft id={quoteattr(answer.draft_id)} orderId={quoteattr(answer.order_id)}"
        f' validUntil="{utc_z(answer.valid_until)}">'
        f"{_premium('Premium', answer.premium)}{_premium('QuotedPremium', answer.quoted_premium)}"
        "</o:Draft></o:FinalCalculateResponse>"
    )


async def issue(request: web.Request, company: Company, operation: Element) -> web.StreamResponse:
    sandbox = request.app[SANDBOX_KEY]
    try:
        order_id = _order_id(operation)
        draft_id = _short_attr(operation, "draftId")
        payment_reference = _short_attr(operation, "paymentReference")
    except BadRequest as error:
        return _fault("Client", str(error))
    action = sandbox.behaviours[company.code].issue.roll()
    fault = await misbehave(sandbox, request, action, company.code)
    if fault is not None:
        return fault
    if action.kind == "error":
        return _fault("Server", "Сервис выпуска полисов временно недоступен")
    if action.kind == "refuse":
        return _refusal("DECLINED", action.reason, "IssueResponse")
    try:
        answer = sandbox.back_office.issue(company, draft_id, order_id, payment_reference)
    except UnknownDraft as error:
        return _client_fault(error.code, "Черновик договора не найден")
    except DraftMismatch as error:
        return _client_fault(error.code, "Черновик оформлен на другой заказ")
    if isinstance(answer, AlreadyIssued):
        return _client_fault(answer.code, "По этому заказу полис уже выпущен", _policy_xml(answer.policy))
    return _xml(f"<o:IssueResponse>{_policy_xml(answer)}</o:IssueResponse>")


def setup(app: web.Application) -> None:
    app.router.add_post("/xml/{code}/soap", soap)
