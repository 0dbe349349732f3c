"""The unit's page behind its personal link: questionnaire and payment confirmations.

Routes (token = the personal link token):

- ``GET  /l/{token}`` (registered by ``bot.links``) → :func:`unit_page`; ``?done=answers`` or
  ``?done=pay-{id}`` shows the thank-you state after a submit (POST-redirect-GET);
- ``POST /l/{token}/answers`` → store a new version of the questionnaire answers;
- ``POST /l/{token}/pay/{disbursement_id}`` → confirm or dispute one disbursement.

The page needs no JavaScript (plain form posts), is Chinese first (English when the browser
prefers it for error pages), and escapes everything (Jinja2 autoescape). A rejected submit answers
422 with the page re-rendered: the user's input kept and each message next to its field
(``aria-describedby``). A repeated submit of the same rendered form (double tap, retry, back
button) stores nothing new and lands on the same thank-you state.

Concurrency: each POST is one short transaction that first loads the link ``FOR UPDATE``
(PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers), so simultaneous submits through one
link are applied one at a time. GETs read through ``keys.READ_SESSIONMAKER`` (on SQLite a
separate read-only engine whose snapshot never waits for the writer); only a link's first open
writes. No transaction is held while sleeping or rendering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot import keys
from bot.forms import (
    Errors,
    check_csrf,
    check_origin,
    csrf_token,
    malformed,
    new_submission_id,
    parse_confirmation,
    read_form,
    single,
    submission_id_of,
    submission_key,
    yuan,
)
from bot.links import SECURITY_HEADERS, guard, link_failed
from config.definition import QuestionnaireDef
from store.answers import (
    AnswerErrors,
    current_answers,
    questionnaire_def,
    submit_confirmation,
    submit_response,
    unit_payments,
)
from store.campaigns import (
    LinkContext,
    hash_token,
    is_well_formed_token,
    link_is_usable,
    load_link_context,
    mark_link_opened,
)
from store.db import transaction

STATUS_TEXT = {"confirmed": "已确认收到", "disputed": "有异议"}
DISPUTE_TEXT = {"not_received": "未收到这笔资金", "amount_differs": "收到的金额不一致"}


# ----------------------------------------------------------------------------------- view model


@dataclass
class PaymentView:
    """One disbursement as shown (money already formatted in 元)."""

    id: int
    batch: str
    amount: str
    paid_on: date
    voucher: str
    current: dict[str, Any] | None
    form: str
    csrf: str
    submission_id: str
    values: dict[str, str] = field(default_factory=dict)
    errors: Errors = field(default_factory=dict)


@dataclass
class PageView:
    """Plain data for the template, built inside the transaction and safe to use after it."""

    token: str
    link_id: int
    project_name: str
    unit_name: str
    campaign_name: str
    opens: str
    closes: str
    tz: str
    questionnaire: QuestionnaireDef | None
    answers: dict[str, Any]
    answered_at: str
    answers_csrf: str
    answers_submission_id: str
    payments: list[PaymentView]
    today: date
    answer_errors: Errors = field(default_factory=dict)


def _fmt_dt(value: datetime | None, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if value else ""


async def _open(
    session: AsyncSession, token: str, now: datetime, *, for_update: bool = False
) -> LinkContext | None:
    """The usable link's context, or None (unknown, revoked, closed, outside the window)."""
    ctx = await load_link_context(session, token, for_update=for_update)
    if ctx is None or not link_is_usable(ctx.link, ctx.campaign, now=now):
        return None
    return ctx


async def _build_view(request: web.Request, session: AsyncSession, token: str, ctx: LinkContext) -> PageView:
    secret = request.app[keys.SECRET]
    link, campaign, project, unit = ctx.link, ctx.campaign, ctx.project, ctx.unit
    tz = ZoneInfo(project.timezone)
    now = request.app[keys.CLOCK]()
    qdef = None
    answers: dict[str, Any] = {}
    answered_at = ""
    if ctx.questionnaire is not None:
        qdef = questionnaire_def(ctx.questionnaire)
        current = await current_answers(session, link)
        if current is not None:
            answers = current.answers
            answered_at = _fmt_dt(current.response.submitted_at, tz)
    payments = []
    if campaign.ask_confirmations:
        for d, c in await unit_payments(session, link.unit_id):
            assert d.id is not None
            current_view = None
            if c is not None:
                current_view = {
                    "status": c.status,
                    "status_text": STATUS_TEXT.get(c.status, c.status),
                    "received_on": c.received_on.isoformat() if c.received_on else "",
                    "amount": yuan(c.amount_fen),
                    "differs": c.status == "confirmed" and c.amount_fen != d.amount_fen,
                    "voucher": c.voucher,
                    "dispute_kind": c.dispute_kind or "",
                    "dispute_text": DISPUTE_TEXT.get(c.dispute_kind or "", ""),
                    "reason": c.reason,
                    "submitted_at": _fmt_dt(c.submitted_at, tz),
                }
            form = f"pay:{d.id}"
            payments.append(
                PaymentView(
                    id=d.id,
                    batch=d.batch,
                    amount=yuan(d.amount_fen),
                    paid_on=d.paid_on,
                    voucher=d.voucher,
                    current=current_view,
                    form=form,
                    csrf=csrf_token(secret, link.token_hash, form),
                    submission_id=new_submission_id(),
                    values=_payment_values(current_view, d.amount_fen),
                )
            )
    assert link.id is not None
    return PageView(
        token=token,
        link_id=link.id,
        project_name=project.name,
        unit_name=unit.name,
        campaign_name=campaign.name,
        opens=_fmt_dt(campaign.opens_at, tz),
        closes=_fmt_dt(campaign.closes_at, tz),
        tz=project.timezone,
        questionnaire=qdef,
        answers=answers,
        answered_at=answered_at,
        answers_csrf=csrf_token(secret, link.token_hash, "answers"),
        answers_submission_id=new_submission_id(),
        payments=payments,
        today=now.astimezone(tz).date(),
    )


def _payment_values(current: dict[str, Any] | None, disbursed_fen: int) -> dict[str, str]:
    """Pre-fill: the current confirmation, else the disbursed amount as the likely answer."""
    if current is None:
        return {"status": "", "amount": yuan(disbursed_fen).replace(",", "")}
    return {
        "status": current["status"],
        "received_on": current["received_on"],
        "amount": current["amount"].replace(",", ""),
        "voucher": current["voucher"],
        "dispute_kind": current["dispute_kind"],
        "reason": current["reason"],
    }


def _render(request: web.Request, view: PageView, *, status: int = 200, done: str = "") -> web.Response:
    env = request.app[keys.TEMPLATES]
    done_payment = None
    if done.startswith("pay-"):
        done_payment = next((p for p in view.payments if f"pay-{p.id}" == done), None)
        if done_payment is None or done_payment.current is None:
            done = ""
    if done == "answers" and not view.answered_at:
        done = ""
    html = env.get_template("unit.html").render(
        lang="zh-CN",
        title=f"{view.unit_name} · {view.campaign_name}",
        v=view,
        done=done,
        done_payment=done_payment,
        dispute_text=DISPUTE_TEXT,
    )
    resp = web.Response(status=status, text=html, content_type="text/html", charset="utf-8")
    resp.headers.update(SECURITY_HEADERS)
    return resp


# ----------------------------------------------------------------------------------- handlers


async def unit_page(request: web.Request, token: str) -> web.StreamResponse:
    """GET: the page, recording the first open. Unusable links get the shared not-found page.

    The page is read on the read sessionmaker (SQLite: a deferred snapshot that does not wait for
    the writer); only the first open of a link writes, in its own one-statement transaction.
    """
    now = request.app[keys.CLOCK]()
    async with transaction(request.app[keys.READ_SESSIONMAKER]) as session:
        opened = await _open(session, token, now)
        view = await _build_view(request, session, token, opened) if opened is not None else None
    if opened is None or view is None:
        return await link_failed(request)
    if opened.link.opened_at is None:
        assert opened.link.id is not None
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            await mark_link_opened(session, opened.link.id, now=now)
    return _render(request, view, done=request.query.get("done", "")[:20])


async def _post_prelude(request: web.Request, form_name: str) -> tuple[str, Any, str] | web.Response:
    """Checks shared by both POSTs: throttle, token shape, origin, body, CSRF, submission id."""
    refused = guard(request)
    if refused is not None:
        return refused
    token = request.match_info["token"]
    if not is_well_formed_token(token):
        return await link_failed(request)
    check_origin(request, request.app[keys.SETTINGS].public_url)
    form = await read_form(request)
    check_csrf(form, request.app[keys.SECRET], hash_token(token), form_name)
    return token, form, submission_id_of(form)


def _thanks(token: str, done: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/l/{token}?done={done}#done")


async def post_answers(request: web.Request) -> web.StreamResponse:
    """POST the questionnaire: 303 to the thank-you state, or 422 with messages by the fields."""
    prelude = await _post_prelude(request, "answers")
    if isinstance(prelude, web.Response):
        return prelude
    token, form, sid = prelude
    now = request.app[keys.CLOCK]()
    sm = request.app[keys.SESSIONMAKER]
    raw: dict[str, Any] = {}
    try:
        async with transaction(sm) as session:
            opened = await _open(session, token, now, for_update=True)
            if opened is not None:
                link = opened.link
                if opened.questionnaire is None:
                    raise malformed("this campaign has no questionnaire")
                assert link.id is not None
                qdef = questionnaire_def(opened.questionnaire)
                raw = _answers_from_form(qdef, form)
                await submit_response(
                    session,
                    link,
                    answers=raw,
                    submission_key=submission_key(link.id, "answers", sid),
                    now=now,
                )
    except AnswerErrors as exc:
        return await _rerender(request, token, answers=raw, answer_errors=exc.fields)
    if opened is None:
        return await link_failed(request)
    raise _thanks(token, "answers")


def _answers_from_form(qdef: QuestionnaireDef, form: Any) -> dict[str, Any]:
    """Form fields ``q_<key>`` → answers (lists for multi questions; '' when unanswered)."""
    out: dict[str, Any] = {}
    for q in qdef.questions:
        name = f"q_{q.key}"
        out[q.key] = form.getall(name, []) if q.kind == "multi" else single(form, name)
    known = {f"q_{q.key}" for q in qdef.questions}
    for name in form:
        if name.startswith("q_") and name not in known:
            out[name[2:]] = form.get(name)  # reported as "no such question"
    return out


async def post_payment(request: web.Request) -> web.StreamResponse:
    """POST one disbursement's confirmation or dispute."""
    try:
        disbursement_id = int(request.match_info["disbursement_id"])
    except ValueError as exc:
        raise malformed("disbursement id") from exc
    prelude = await _post_prelude(request, f"pay:{disbursement_id}")
    if isinstance(prelude, web.Response):
        return prelude
    token, form, sid = prelude
    parsed = parse_confirmation(form)
    now = request.app[keys.CLOCK]()
    try:
        async with transaction(request.app[keys.SESSIONMAKER]) as session:
            opened = await _open(session, token, now, for_update=True)
            if opened is not None:
                link = opened.link
                assert link.id is not None
                key = submission_key(link.id, f"pay:{disbursement_id}", sid)
                if parsed.errors:
                    # Syntax errors first; the store adds the semantic ones in the same message set.
                    raise AnswerErrors(parsed.errors)
                await submit_confirmation(
                    session,
                    link,
                    disbursement_id,
                    status=parsed.status,
                    received_on=parsed.received_on,
                    amount_fen=parsed.amount_fen,
                    voucher=parsed.voucher,
                    dispute_kind=parsed.dispute_kind,
                    reason=parsed.reason,
                    submission_key=key,
                    now=now,
                )
    except AnswerErrors as exc:
        return await _rerender(
            request, token, payment=(disbursement_id, parsed.values, {**exc.fields, **parsed.errors})
        )
    if opened is None:
        return await link_failed(request)
    raise _thanks(token, f"pay-{disbursement_id}")


async def _rerender(
    request: web.Request,
    token: str,
    *,
    answers: dict[str, Any] | None = None,
    answer_errors: Errors | None = None,
    payment: tuple[int, dict[str, str], Errors] | None = None,
) -> web.Response:
    """The page again (422) with the user's input and the messages next to the fields."""
    now = request.app[keys.CLOCK]()
    async with transaction(request.app[keys.READ_SESSIONMAKER]) as session:
        opened = await _open(session, token, now)
        view = await _build_view(request, session, token, opened) if opened else None
    if view is None:
        return await link_failed(request)
    if answer_errors is not None:
        view.answers = dict(answers or {})
        view.answer_errors = answer_errors
    if payment is not None:
        pid, values, errors = payment
        for p in view.payments:
            if p.id == pid:
                p.values, p.errors = values, errors
    return _render(request, view, status=422)


def setup(app: web.Application, *, start_workers: bool) -> None:
    """Register the unit page's form posts (the GET is registered by ``bot.links``)."""
    del start_workers
    app.router.add_post("/l/{token}/answers", post_answers, name="unit_answers")
    app.router.add_post(r"/l/{token}/pay/{disbursement_id}", post_payment, name="unit_payment")
