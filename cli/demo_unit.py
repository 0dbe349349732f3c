"""A simulated recipient unit for ``jixiao demo``: opens its personal link like a phone browser,
reads the forms on the page and submits them — the questionnaire, then each payment.

It drives the real page over HTTP (GET the link, POST what the form asks for, hidden CSRF and
submission fields included), so the demo shows the same path a person takes, not a shortcut into
the database. Forms are read with the standard library's HTML parser; nothing here knows the
questionnaire's keys.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import aiohttp


@dataclass
class Form:
    """One ``<form>`` of the page: where it posts and the controls it holds."""

    action: str
    hidden: dict[str, str] = field(default_factory=dict)
    radios: dict[str, list[str]] = field(default_factory=dict)
    checkboxes: dict[str, list[str]] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    required: set[str] = field(default_factory=set)


class FormReader(HTMLParser):
    """Collects the forms of a page (``forms``), in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method", "get").lower() == "post":
            self._current = Form(action=a.get("action", ""))
            self.forms.append(self._current)
            return
        form = self._current
        if form is None or not a.get("name"):
            return
        name = a["name"]
        if "required" in a:
            form.required.add(name)
        if tag == "textarea":
            form.texts.append(name)
        elif tag == "input":
            kind = a.get("type", "text").lower()
            if kind == "hidden":
                form.hidden[name] = a.get("value", "")
            elif kind == "radio":
                form.radios.setdefault(name, []).append(a.get("value", ""))
            elif kind == "checkbox":
                form.checkboxes.setdefault(name, []).append(a.get("value", ""))
            elif kind not in ("submit", "button"):
                form.texts.append(name)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def read_forms(html: str) -> list[Form]:
    reader = FormReader()
    reader.feed(html)
    return reader.forms


@dataclass(frozen=True)
class Payment:
    """What the unit knows about one payment it received (from its own books)."""

    disbursement_id: int
    amount_yuan: str
    received_on: str


def questionnaire_answers(form: Form, rng: random.Random) -> dict[str, str]:
    """Answers a mostly satisfied unit gives: scale options lean to the first (best) ones."""
    data = dict(form.hidden)
    for name, options in form.radios.items():
        weights = [max(1, 8 - 3 * i) for i in range(len(options))]
        data[name] = rng.choices(options, weights=weights)[0]
    for name, options in form.checkboxes.items():
        data[name] = options[0]
    for name in form.texts:
        if name in form.required:
            data[name] = "1"
        elif rng.random() < 0.3:
            data[name] = rng.choice(["希望简化报销材料。", "服务很及时，谢谢。", "建议增加线上培训场次。"])
    return data


def payment_answer(form: Form, payment: Payment, rng: random.Random) -> dict[str, str]:
    """Confirm the payment as booked, or (one time in ten) dispute it."""
    data = dict(form.hidden)
    if rng.random() < 0.1:
        data.update(status="disputed", dispute_kind=(form.radios.get("dispute_kind") or ["other"])[-1])
        data["reason"] = "到账金额与通知不一致，请核对。"
    else:
        data.update(status="confirmed", received_on=payment.received_on, amount=payment.amount_yuan)
        data["voucher"] = f"收-{payment.disbursement_id:05d}"
    return data


async def answer_link(
    http: aiohttp.ClientSession, url: str, payments: dict[int, Payment], rng: random.Random
) -> dict[str, Any]:
    """Open ``url``, submit the questionnaire and every payment form; what happened, counted."""
    done = {"answered": False, "confirmed": 0, "errors": 0}
    async with http.get(url) as resp:
        page = await resp.text()
        if resp.status != 200:
            done["errors"] += 1
            return done
    for form in read_forms(page):
        action = form.action.split("#", 1)[0]  # the fragment only scrolls a refused form into view
        if "/pay/" in action:
            payment = payments.get(int(action.rsplit("/", 1)[-1]))
            if payment is None:
                continue
            data = payment_answer(form, payment, rng)
        else:
            data = questionnaire_answers(form, rng)
        async with http.post(
            aiohttp.client.URL(url).join(aiohttp.client.URL(action)), data=data, allow_redirects=False
        ) as resp:
            ok = resp.status == 303
        if not ok:
            done["errors"] += 1
        elif "/pay/" in action:
            done["confirmed"] += 1
        else:
            done["answered"] = True
    return done
