"""The payment page: plain HTML in Russian, two forms, no scripts and no external assets."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from aiohttp import web

from .money import format_rub
from .provider import Payment

# Nothing but this page's own inline styles and forms posting back to it.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f3f4f6;margin:0;color:#111}
main{max-width:26rem;margin:3rem auto;background:#fff;border-radius:12px;padding:2rem;
box-shadow:0 1px 4px rgba(0,0,0,.12)}
h1{font-size:1.3rem;margin:0 0 1rem}.amount{font-size:1.8rem;font-weight:600;margin:.5rem 0 1.5rem}
.muted{color:#555;font-size:.9rem}form{display:inline-block;margin:0 .5rem .5rem 0}
button{font-size:1rem;padding:.7rem 1.4rem;border-radius:8px;border:1px solid #888;background:#fff;cursor:pointer}
button.pay{background:#1a7f37;border-color:#1a7f37;color:#fff}a.back{display:inline-block;margin-top:1rem}
"""

_RESULTS = {
    "paid": ("Оплата прошла успешно", "Деньги получены. Страховая компания оформит полис в ближайшее время."),
    "failed": ("Оплата не выполнена", "Вы отказались от оплаты. Деньги не списаны."),
    "expired": ("Срок оплаты истёк", "Ссылка на оплату больше не действует. Деньги не списаны."),
}


def _document(title: str, inner: str, status: int = 200) -> web.Response:
    html = (
        '<!DOCTYPE html><html lang="ru"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{inner}</main></body></html>"
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8", headers=_HEADERS)


def _summary(payment: Payment) -> str:
    return (
        f'<p class="muted">Получатель: <strong>{escape(payment.insurer_name)}</strong></p>'
        f"<p>{escape(payment.description)}</p>"
        f'<p class="amount">{format_rub(payment.amount_kopecks)}</p>'
    )


def _button(payment: Payment, outcome: str, label: str, css: str) -> str:
    return (
        f'<form method="post" action="/pay/{escape(payment.payment_id)}">'
        f'<input type="hidden" name="outcome" value="{outcome}">'
        f'<button type="submit" class="{css}">{label}</button></form>'
    )


def payment_page(payment: Payment) -> web.Response:
    """Pending: the amount and the two buttons; finished: its result and the way back."""
    if payment.shown_status(datetime.now(UTC)) != "pending":
        return result_page(payment)
    return _document(
        "Оплата заказа",
        "<h1>Оплата полиса ОСАГО</h1>"
        + _summary(payment)
        + _button(payment, "paid", "Оплатить", "pay")
        + _button(payment, "failed", "Отказаться", "decline")
        + '<p class="muted">Тестовый платёжный шлюз: деньги не списываются.</p>',
    )


def result_page(payment: Payment) -> web.Response:
    status = payment.shown_status(datetime.now(UTC))
    assert status != "pending", "a pending payment shows its buttons"
    title, text = _RESULTS[status]
    return _document(
        title,
        f"<h1>{title}</h1>"
        + _summary(payment)
        + f"<p>{text}</p>"
        + f'<a class="back" href="{escape(payment.return_url, quote=True)}">Вернуться на сайт</a>',
    )


def not_found_page() -> web.Response:
    return _document("Платёж не найден", "<h1>Платёж не найден</h1><p>Проверьте ссылку на оплату.</p>", 404)


def bad_request_page() -> web.Response:
    return _document("Ошибка", "<h1>Неверный запрос</h1><p>Вернитесь на страницу оплаты.</p>", 400)
