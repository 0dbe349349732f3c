"""The unit's page behind its personal link: questionnaire and payment confirmations.

Routes (token = the personal link token):

- ``GET  /l/{token}`` (registered by ``bot.links``) → :func:`unit_page`; ``?done=answers`` or
  ``?done=pay-{id}`` shows the thank-you state after a submit (POST-redirect-GET);
- ``POST /l/{token}/answers`` → store a new version of the questionnaire answers;
- ``POST /l/{token}/pay/{disbursement_id}`` → confirm or dispute one disbursement.

The page needs no JavaScript (plain form posts), is Chinese first (English when the browser
prefers it for error pages), and escapes everything. A rejected submit answers 422 with the page
re-rendered: the user's input kept and each message next to its field (``aria-describedby``).
A repeated submit of the same rendered form (double tap, retry, back button) stores nothing new
and lands on the same thank-you state.

This is the hot path of a campaign, so it is hand-written end to end: each request is one unit
of work in ``store.linkpage`` (on SQLite one trip to the connection's worker thread for the whole
transaction; on PostgreSQL one asyncpg transaction that locks the link and unit rows ``FOR
UPDATE``, so simultaneous submits through one link apply one at a time), returning plain rows, and
the HTML is spliced from pieces pre-rendered per questionnaire version (``bot.unit_html``, tested
byte-for-byte against ``templates/unit.html``). GETs read on ``keys.READ_SESSIONMAKER``'s engine
(SQLite: a snapshot that never waits for the writer); only a link's first open writes. No
transaction is held while rendering.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiDict
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import keys
from bot.errors import error_page
from bot.forms import (
    CsrfSigner,
    Errors,
    check_origin,
    malformed,
    new_submission_id,
    parse_confirmation,
    read_form,
    single,
    submission_id_of,
    submission_key,
)
from bot.links import SECURITY_HEADERS, link_failed
from bot.unit_html import (
    CompiledQuestionnaire,
    PaymentForm,
    payment_values,
    render_closed,
    render_page,
    shell_from,
)
from config.definition import QuestionnaireDef
from store.answers import AnswerErrors, ResubmittedDifferently, TooManyVersions
from store.campaigns import hash_token, is_well_formed_token
from store.db import SessionMaker
from store.errors import StoreError
from store.linkpage import LinkPageStore, NoQuestionnaire, PageData

_PAGE_HEADERS = {**SECURITY_HEADERS, "Content-Type": "text/html; charset=utf-8"}


class LinkPages:
    """Per-application state of the unit page, built once: the store's units of work on the
    app's engines (on first use: with ``cli.serve``'s own database the engines exist only after
    start-up), questionnaires compiled to HTML pieces by ``(id, version)``, the page shell, and
    the CSRF signer (HMAC key set up once)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._store: LinkPageStore | None = None
        self._compiled: dict[tuple[int, int], CompiledQuestionnaire] = {}
        self.shell = shell_from(app[keys.TEMPLATES])
        self.signer = CsrfSigner(app[keys.SECRET])

    @property
    def store(self) -> LinkPageStore:
        if self._store is None:
            write = _engine_of(self._app[keys.SESSIONMAKER])
            read = _engine_of(self._app[keys.READ_SESSIONMAKER])
            self._store = LinkPageStore(write, read)
        return self._store

    def compiled(self, page: PageData) -> CompiledQuestionnaire | None:
        """The page's questionnaire as HTML pieces, compiled once per (id, version)."""
        qdef, link = page.questionnaire, page.link
        if qdef is None or link.questionnaire_id is None or link.questionnaire_version is None:
            return None
        key = (link.questionnaire_id, link.questionnaire_version)
        cq = self._compiled.get(key)
        if cq is None or cq.qdef is not qdef:
            if len(self._compiled) >= 256:  # a handful per deployment; never grow unbounded
                self._compiled.clear()
            cq = self._compiled[key] = CompiledQuestionnaire(qdef)
        return cq

    def respond(
        self,
        page: PageData,
        *,
        token: str,
        token_hash: str,
        now: datetime,
        status: int = 200,
        done: str = "",
        answers: dict[str, Any] | None = None,
        answer_errors: Errors | None = None,
        payment: tuple[int, dict[str, str], Errors] | None = None,
    ) -> web.Response:
        """The rendered page (fresh CSRF tokens bound to the link and form, fresh submission
        ids), with a refused submit's input and messages when given."""
        signer = self.signer
        payments = []
        for row in page.payments:
            form = PaymentForm(
                row,
                signer.token(token_hash, f"pay:{row.id}"),
                new_submission_id(),
                payment_values(row),
                {},
            )
            if payment is not None and payment[0] == row.id:
                form.values, form.errors = payment[1], payment[2]
            payments.append(form)
        html = render_page(
            self.shell,
            page,
            self.compiled(page),
            token=token,
            answers_csrf=signer.token(token_hash, "answers"),
            answers_submission_id=new_submission_id(),
            payments=payments,
            today=_today(page, now),
            answers=answers,
            answer_errors=answer_errors,
            done=done,
        )
        return web.Response(status=status, body=html.encode(), headers=_PAGE_HEADERS)


LINK_PAGES = web.AppKey("link_pages", LinkPages)


def _engine_of(sessionmaker: SessionMaker) -> AsyncEngine:
    engine = sessionmaker.kw.get("bind")
    if not isinstance(engine, AsyncEngine):  # pragma: no cover - composition error
        raise TypeError("the unit page needs sessionmakers bound to an AsyncEngine")
    return engine


def _today(page: PageData, now: datetime) -> date:
    """ "Today" in the project's timezone (the latest date a payment may be received on)."""
    return now.astimezone(ZoneInfo(page.link.timezone)).date()


# ----------------------------------------------------------------------------------- handlers


async def unit_page(request: web.Request, token: str) -> web.StreamResponse:
    """GET: the page, recording the first open. Unusable links get the shared not-found page."""
    pages = request.app[LINK_PAGES]
    now = request.app[keys.CLOCK]()
    token_hash = hash_token(token)
    page = await pages.store.open_page(token_hash, now=now)  # records the first open
    if not isinstance(page, PageData):
        return await link_failed(request)
    if page.closed:  # the campaign is over: what the unit submitted, read-only
        html = render_closed(request.app[keys.TEMPLATES], page)
        return web.Response(body=html.encode(), headers=_PAGE_HEADERS)
    done = request.query.get("done", "")[:20]
    return pages.respond(page, token=token, token_hash=token_hash, now=now, done=done)


async def _post_prelude(
    request: web.Request, form_name: str
) -> tuple[str, str, MultiDict[str], str] | web.Response:
    """Checks shared by both POSTs: token shape, origin, body, CSRF, submission id (the failure
    throttle counts bad tokens, never refuses a valid one). Returns (token, token hash, form,
    submission id) or the response refusing the request."""
    token = request.match_info["token"]
    if not is_well_formed_token(token):
        return await link_failed(request)
    check_origin(request, request.app[keys.SETTINGS].public_url)
    form = await read_form(request)
    token_hash = hash_token(token)
    request.app[LINK_PAGES].signer.check(form, token_hash, form_name)
    return token, token_hash, form, submission_id_of(form)


def _conflict_page(request: web.Request, exc: StoreError) -> web.Response:
    """409: the submit was refused as a whole (a submission id sent again with other values, or
    the version cap reached); the message says what happened and what to do."""
    response = error_page(request, 409, "未能保存本次提交", exc.zh, "Not saved", exc.en)
    response.headers.update(SECURITY_HEADERS)
    return response


def _thanks(token: str, done: str) -> web.Response:
    """303 to the thank-you state (POST-redirect-GET), sent only once the submit is committed.
    Returned, not raised: an ``HTTPSeeOther`` exception costs a traceback and a walk through
    every middleware's ``except`` clauses on each submit."""
    return web.Response(status=303, headers={"Location": f"/l/{token}?done={done}#done"})


async def post_answers(request: web.Request) -> web.StreamResponse:
    """POST the questionnaire: 303 to the thank-you state, or 422 with messages by the fields."""
    prelude = await _post_prelude(request, "answers")
    if isinstance(prelude, web.Response):
        return prelude
    token, token_hash, form, sid = prelude
    raw: dict[str, Any] = {}

    def answers_for(qdef: QuestionnaireDef) -> dict[str, Any]:
        # May run on the SQLite worker thread: pure, reads only the parsed form.
        raw.update(_answers_from_form(qdef, form))
        return raw

    try:
        outcome = await request.app[LINK_PAGES].store.submit_answers(
            token_hash,
            now=request.app[keys.CLOCK](),
            key_for=lambda link_id: submission_key(link_id, "answers", sid),
            answers_for=answers_for,
        )
    except AnswerErrors as exc:
        return await _rerender(request, token, token_hash, answers=raw, answer_errors=exc.fields)
    except (ResubmittedDifferently, TooManyVersions) as exc:
        return _conflict_page(request, exc)
    except NoQuestionnaire as exc:
        raise malformed("this campaign has no questionnaire") from exc
    if not outcome.usable:
        return await link_failed(request)
    return _thanks(token, "answers")


def _answers_from_form(qdef: QuestionnaireDef, form: MultiDict[str]) -> dict[str, Any]:
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
    token, token_hash, form, sid = prelude
    parsed = parse_confirmation(form)
    try:
        outcome = await request.app[LINK_PAGES].store.submit_confirmation(
            token_hash,
            disbursement_id,
            now=request.app[keys.CLOCK](),
            key_for=lambda link_id: submission_key(link_id, f"pay:{disbursement_id}", sid),
            status=parsed.status,
            received_on=parsed.received_on,
            amount_fen=parsed.amount_fen,
            voucher=parsed.voucher,
            dispute_kind=parsed.dispute_kind,
            reason=parsed.reason,
            syntax_errors=parsed.errors,  # reported first, with the semantic ones below
        )
    except (ResubmittedDifferently, TooManyVersions) as exc:
        return _conflict_page(request, exc)
    except AnswerErrors as exc:
        errors = {**exc.fields, **parsed.errors}
        return await _rerender(request, token, token_hash, payment=(disbursement_id, parsed.values, errors))
    if not outcome.usable:
        return await link_failed(request)
    return _thanks(token, f"pay-{disbursement_id}")


async def _rerender(
    request: web.Request,
    token: str,
    token_hash: str,
    *,
    answers: dict[str, Any] | None = None,
    answer_errors: Errors | None = None,
    payment: tuple[int, dict[str, str], Errors] | None = None,
) -> web.Response:
    """The page again (422) with the user's input and the messages next to the fields."""
    pages = request.app[LINK_PAGES]
    now = request.app[keys.CLOCK]()
    page = await pages.store.read_page(token_hash, now=now)
    if not isinstance(page, PageData) or page.closed:  # closed between the submit and now
        return await link_failed(request)
    return pages.respond(
        page,
        token=token,
        token_hash=token_hash,
        now=now,
        status=422,
        answers=dict(answers or {}) if answer_errors is not None else None,
        answer_errors=answer_errors,
        payment=payment,
    )


def setup(app: web.Application, *, start_workers: bool) -> None:
    """Register the unit page's form posts (the GET is registered by ``bot.links``)."""
    del start_workers
    app[LINK_PAGES] = LinkPages(app)

    async def compile_statements(app: web.Application) -> None:
        # While starting, not on the first unit's request: compile the page's statements for the
        # engines' dialects (≈ 30 ms of CPU; the property builds and keeps the store) and, on
        # PostgreSQL, open the pool and prepare the page's statement on each connection.
        # on_startup runs after cleanup_ctx has set up the engines (cli.serve's own database).
        await app[LINK_PAGES].store.warm()

    app.on_startup.append(compile_statements)
    app.router.add_post("/l/{token}/answers", post_answers, name="unit_answers")
    app.router.add_post(r"/l/{token}/pay/{disbursement_id}", post_payment, name="unit_payment")
