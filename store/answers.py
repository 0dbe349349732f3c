"""Responses to the questionnaire and payment confirmations, versioned, with their validation.

Invariants kept here:

- exactly one ``is_current`` response per (project, unit, questionnaire) and one current
  confirmation per disbursement; every earlier version is kept (``version`` counts 1, 2, …);
- a submission is idempotent by ``submission_key`` (unique): submitting the same key again returns
  the stored row with ``created=False`` and changes nothing;
- money is integer fen; ``received_on`` is a calendar date in the project's timezone and may not be
  later than "today" there;
- validation runs before anything is written and reports every problem by field, so a rejected
  submission stores nothing.

Concurrency: callers load the link with ``store.campaigns.find_link_by_token(for_update=True)``;
``submit_*`` additionally lock the unit row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` serialises all writers), so concurrent submissions for one unit are applied one
after the other and the version numbers stay gap-free.

Functions take the session first and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from config.definition import QuestionnaireDef
from config.text import clean_text
from store.campaigns import get_campaign, link_is_usable
from store.errors import Conflict, Invalid, NotFound
from store.models import (
    Answer,
    Campaign,
    Disbursement,
    Link,
    PaymentConfirmation,
    Project,
    Questionnaire,
    Response,
    Unit,
)
from store.payment_states import amount_differs, answer_state

#: Free-text answers without their own ``max_length`` are cut off here (characters).
DEFAULT_TEXT_MAX = 2000
#: Dispute reasons (characters).
REASON_MAX = 500
VOUCHER_MAX = 100
STATUSES = ("confirmed", "disputed")
DISPUTE_KINDS = ("not_received", "amount_differs")
#: A confirmed amount above max(10 × disbursed, 100万元) is taken as a typo, not a fact (fen).
ABSURD_FLOOR_FEN = 100_000_000
#: ASCII digits only (``\d`` would also take Arabic-Indic and full-width digits).
_NUMBER_RE = re.compile(r"^-?[0-9]{1,15}(\.[0-9]{1,6})?$")

FieldErrors = dict[str, tuple[str, str]]


class AnswerErrors(Invalid):
    """Validation failed; ``fields`` maps each field name to its (zh, en) message."""

    status = 422

    def __init__(self, fields: FieldErrors) -> None:
        self.fields = dict(fields)
        first = next(iter(self.fields))
        zh, en = self.fields[first]
        super().__init__(f"{len(fields)} 处填写有误：{zh}", f"{len(fields)} problem(s): {en}", where=first)


#: Versions kept of one unit's answers to one questionnaire, and of one disbursement's
#: confirmation (so at most this many per link). A person correcting a form a few times is
#: normal; hundreds of versions are a script, and each one is a row the exports and the
#: history carry forever. Past it, a submit is refused with :class:`TooManyVersions`.
MAX_VERSIONS = 50


class TooManyVersions(Conflict):
    """The form has already been submitted ``MAX_VERSIONS`` times (409, nothing stored)."""

    def __init__(self) -> None:
        super().__init__(
            f"此表单已提交 {MAX_VERSIONS} 次，达到修改次数上限，不能再修改。如需更正请联系项目联系人。",
            f"this form has been submitted {MAX_VERSIONS} times, the most allowed; "
            "contact the project's coordinator to correct it",
            where="version",
        )


class ResubmittedDifferently(Conflict):
    """A submission id already stored with OTHER values (409, nothing stored): the same rendered
    form sent twice must carry the same answers; a change is a new submit from a fresh page."""

    def __init__(self) -> None:
        super().__init__(
            "这份表单已经提交过，且内容与本次不同。请重新打开您的专属链接，修改后再提交。",
            "this form was already submitted with different values; reopen your link, "
            "change what you need and submit again",
            where="submission_id",
        )


def next_version(last: int | None) -> int:
    """The version after ``last`` (1 for the first), or :class:`TooManyVersions`."""
    if last is not None and last >= MAX_VERSIONS:
        raise TooManyVersions()
    return int(last or 0) + 1


def stored_confirmation(
    *,
    status: str,
    received_on: date | None,
    amount_fen: int | None,
    voucher: str,
    dispute_kind: str | None,
    reason: str,
) -> tuple[str, date | None, int | None, str, str | None, str]:
    """The values a confirmation row keeps, in column order (status, received_on, amount_fen,
    voucher, dispute_kind, reason): a dispute keeps no date, amount or voucher; a confirmation no
    dispute kind. Texts are expected already cleaned (:func:`confirmation_texts`)."""
    if status == "confirmed":
        return status, received_on, amount_fen, voucher, None, reason
    return status, None, None, "", dispute_kind, reason


# ----------------------------------------------------------------------------------- validation


def questionnaire_def(q: Questionnaire) -> QuestionnaireDef:
    """The stored questionnaire JSON as the validated model."""
    return QuestionnaireDef.model_validate(q.definition)


def validate_answers(
    qdef: QuestionnaireDef, answers: Mapping[str, Any]
) -> tuple[dict[str, Any], FieldErrors]:
    """Check typed answers against the questionnaire; return (clean answers, errors by question key).

    Accepted values: ``scale``/``single`` → one option string; ``multi`` → list of option strings;
    ``number`` → Decimal, int or decimal string (stored as a canonical decimal string, never
    float); ``text`` → string (control characters cleaned by ``config.text.clean_text``, stripped; empty
    means unanswered). Unknown keys are errors.
    """
    clean: dict[str, Any] = {}
    errors: FieldErrors = {}
    known = {q.key for q in qdef.questions}
    for key in answers:
        if key not in known:
            errors[key] = ("没有这个问题", "no such question")
    for q in qdef.questions:
        raw = answers.get(q.key)
        empty = raw is None or raw == "" or raw == [] or (isinstance(raw, str) and not raw.strip())
        if empty:
            if q.required:
                errors[q.key] = ("此题必答", "this question is required")
            continue
        if q.kind in ("scale", "single"):
            options = qdef.options_for(q)
            if not isinstance(raw, str) or raw not in options:
                errors[q.key] = ("请从给出的选项中选择", "choose one of the given options")
            else:
                clean[q.key] = raw
        elif q.kind == "multi":
            values = raw if isinstance(raw, list) else None
            if values is None or not all(isinstance(v, str) for v in values):
                errors[q.key] = ("答案格式不对", "expected a list of options")
            elif any(v not in q.options for v in values) or len(set(values)) != len(values):
                errors[q.key] = (
                    "请从给出的选项中选择（不可重复）",
                    "choose from the given options (no repeats)",
                )
            else:
                clean[q.key] = [o for o in q.options if o in values]  # option order, stable
        elif q.kind == "number":
            number = _to_decimal(raw)
            if number is None:
                errors[q.key] = ("请填写数字", "enter a number")
            elif q.min is not None and number < q.min:
                errors[q.key] = (f"不能小于 {q.min}", f"must be at least {q.min}")
            elif q.max is not None and number > q.max:
                errors[q.key] = (f"不能大于 {q.max}", f"must be at most {q.max}")
            else:
                clean[q.key] = str(number)
        else:  # text
            if not isinstance(raw, str):
                errors[q.key] = ("请填写文字", "enter text")
                continue
            text = clean_text(raw).strip()
            limit = q.max_length or DEFAULT_TEXT_MAX
            if len(text) > limit:
                errors[q.key] = (
                    f"最多 {limit} 个字（现在 {len(text)} 个）",
                    f"at most {limit} characters (now {len(text)})",
                )
            else:
                clean[q.key] = text
    return clean, errors


def _to_decimal(raw: Any) -> Decimal | None:
    if isinstance(raw, bool) or isinstance(raw, float):
        return None  # floats are refused: they are not exact
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, Decimal):
        return raw if raw.is_finite() else None
    if isinstance(raw, str) and _NUMBER_RE.match(raw.strip()):
        try:
            return Decimal(raw.strip())
        except InvalidOperation:  # pragma: no cover - the regex already excludes it
            return None
    return None


def confirmation_texts(voucher: str, reason: str) -> tuple[str, str]:
    """The voucher (one line) and reason (multi-line) as stored: control characters cleaned
    (``config.text.clean_text``) and stripped. Lengths are checked on these values."""
    return clean_text(voucher, multiline=False).strip(), clean_text(reason).strip()


def today_in(tz: str, now: datetime) -> date:
    """The calendar date of ``now`` in timezone ``tz``."""
    return now.astimezone(ZoneInfo(tz)).date()


class HasAmountFen(Protocol):
    """What :func:`validate_confirmation` reads of a disbursement (a row or a plain value)."""

    @property
    def amount_fen(self) -> int: ...


def validate_confirmation(
    disbursement: HasAmountFen,
    *,
    status: str,
    received_on: date | None,
    amount_fen: int | None,
    voucher: str,
    dispute_kind: str | None,
    reason: str,
    today: date,
) -> FieldErrors:
    """EVERY problem with a confirmation of ``disbursement``, by form field name (empty when
    valid), so a form shows all its messages at once.

    ``confirmed`` needs ``received_on`` (not after ``today``, not before 2000) and ``amount_fen``
    (≥ 0, not absurd); ``disputed`` needs ``dispute_kind`` and, for ``amount_differs``, a reason.
    """
    errors: FieldErrors = {}
    if status not in STATUSES:  # reported with every other problem found, never alone
        errors["status"] = ("请选择“已收到”或“有异议”", "choose confirmed or disputed")
    if len(voucher) > VOUCHER_MAX:
        errors["voucher"] = (f"凭证号最多 {VOUCHER_MAX} 个字", f"voucher at most {VOUCHER_MAX} characters")
    if len(reason) > REASON_MAX:
        errors["reason"] = (
            f"说明最多 {REASON_MAX} 个字（现在 {len(reason)} 个）",
            f"at most {REASON_MAX} characters (now {len(reason)})",
        )
    if status == "confirmed":
        if received_on is None:
            errors["received_on"] = ("请填写到账日期", "enter the date received")
        elif received_on > today:
            errors["received_on"] = ("到账日期不能晚于今天", "the date received cannot be in the future")
        elif received_on.year < 2000:
            errors["received_on"] = ("到账日期不合理", "the date received is implausible")
        if amount_fen is None:
            errors["amount"] = ("请填写到账金额", "enter the amount received")
        elif amount_fen < 0:
            errors["amount"] = ("金额不能为负数", "the amount cannot be negative")
        elif amount_fen > max(10 * disbursement.amount_fen, ABSURD_FLOOR_FEN):
            errors["amount"] = (
                "金额远超拨付金额，请核对（单位：元）",
                "the amount is far above the disbursement; check it (in yuan)",
            )
    elif status == "disputed":
        if dispute_kind not in DISPUTE_KINDS:
            errors["dispute_kind"] = ("请选择异议类型", "choose what is wrong")
        elif dispute_kind == "amount_differs" and not reason.strip():
            errors["reason"] = ("请说明实际收到的金额或差异", "explain the difference")
    return errors


# ----------------------------------------------------------------------------------- writing


async def _lock_unit(session: AsyncSession, unit_id: int) -> None:
    """Serialise a unit's submissions across links (PostgreSQL). SQLite needs no query: its
    ``BEGIN IMMEDIATE`` transactions already run one at a time."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(Unit.id).where(Unit.id == unit_id).with_for_update())


async def _usable_campaign(session: AsyncSession, link: Link, now: datetime) -> Campaign:
    campaign = await get_campaign(session, link.campaign_id)
    if not link_is_usable(link, campaign, now=now):
        raise Conflict("链接已失效或活动已结束", "the link is no longer valid", where="link")
    return campaign


async def submit_response(
    session: AsyncSession,
    link: Link,
    *,
    answers: Mapping[str, Any],
    submission_key: str,
    now: datetime,
) -> tuple[Response, bool]:
    """Store a new version of the unit's questionnaire answers; returns (response, created).

    A known ``submission_key`` returns the stored response and ``created=False`` (a retried or
    double-tapped submit). Otherwise the answers are validated (``AnswerErrors`` lists every
    problem, nothing stored), the unit's previous current response stops being current, and the new
    one (version n+1) is current. ``Response.satisfaction`` copies the satisfaction question's
    answer. ``link.answered_at`` records the first answer. A new response is returned as a plain
    object (written with Core, not attached to the session); a known one is the loaded row.
    """
    existing = await _by_key(session, Response, submission_key)
    if existing is not None and existing.link_id != link.id:
        raise Conflict("提交编号冲突", "submission key belongs to another link", where="submission_id")
    campaign = await _usable_campaign(session, link, now)
    if campaign.questionnaire_id is None:
        raise Invalid("本次活动没有问卷", "this campaign has no questionnaire", where="questionnaire")
    questionnaire = await session.get(Questionnaire, campaign.questionnaire_id)
    assert questionnaire is not None
    qdef = questionnaire_def(questionnaire)
    clean, errors = validate_answers(qdef, answers)
    if existing is not None:
        stored = dict((await session.execute(_ANSWERS_OF, {"rid": existing.id})).tuples().all())
        if errors or clean != stored:
            raise ResubmittedDifferently()
        return existing, False
    if errors:
        raise AnswerErrors(errors)

    await _lock_unit(session, link.unit_id)
    # The hot path of every submit, in Core with statements built once: the ORM unit of work
    # (flush of one Response, bulk-update synchronisation) cost several times the SQL itself.
    scope = {"p_project": campaign.project_id, "p_unit": link.unit_id, "p_questionnaire": questionnaire.id}
    # The current row is always the newest version, so un-marking it also yields the last version.
    last = max((await session.execute(_UNMARK_CURRENT_RESPONSE, scope)).scalars(), default=None)
    if last is None:  # no current row (e.g. all imported rows superseded elsewhere): ask directly
        last = await session.scalar(_LAST_RESPONSE_VERSION, scope)
    version = next_version(last)
    sat = clean.get(qdef.satisfaction_question)
    values: dict[str, Any] = {
        "project_id": campaign.project_id,
        "unit_id": link.unit_id,
        "questionnaire_id": questionnaire.id,
        "campaign_id": campaign.id,
        "link_id": link.id,
        "version": version,
        "is_current": True,
        "source": "link",
        "submission_key": submission_key,
        "satisfaction": sat if isinstance(sat, str) else None,
        "submitted_at": now,
    }
    response_id = (await session.execute(_INSERT_RESPONSE, values)).scalar_one()
    if clean:
        await session.execute(
            _INSERT_ANSWER,
            [{"response_id": response_id, "question_key": k, "value": v} for k, v in clean.items()],
        )
    if link.answered_at is None:
        link.answered_at = now
        await session.flush()
    return Response(id=response_id, **values), True


# Statements of submit_response, built once. They are Core (table-level): Response objects
# already loaded into the caller's session are not refreshed by them (the page loads none).
_R = Response.__table__  # type: ignore[attr-defined]
_R_SCOPE = (
    # (bound names differ from column names: UPDATE reserves those for its SET clause)
    _R.c.project_id == bindparam("p_project"),
    _R.c.unit_id == bindparam("p_unit"),
    _R.c.questionnaire_id == bindparam("p_questionnaire"),
)
_UNMARK_CURRENT_RESPONSE = (
    update(_R).where(*_R_SCOPE, _R.c.is_current.is_(True)).values(is_current=False).returning(_R.c.version)
)
_LAST_RESPONSE_VERSION = select(func.max(_R.c.version)).where(*_R_SCOPE)
_INSERT_RESPONSE = insert(_R).returning(_R.c.id)
_INSERT_ANSWER = insert(Answer.__table__)  # type: ignore[attr-defined]
_ANSWERS_OF = select(Answer.question_key, Answer.value).where(Answer.response_id == bindparam("rid"))


async def submit_confirmation(
    session: AsyncSession,
    link: Link,
    disbursement_id: int,
    *,
    status: str,
    received_on: date | None = None,
    amount_fen: int | None = None,
    voucher: str = "",
    dispute_kind: str | None = None,
    reason: str = "",
    submission_key: str,
    now: datetime,
) -> tuple[PaymentConfirmation, bool]:
    """Store a new version of the unit's confirmation (or dispute) of one disbursement.

    Same idempotency and versioning as :func:`submit_response`. The disbursement must belong to the
    link's unit. A confirmed ``amount_fen`` different from the disbursed amount is kept as given:
    it is a discrepancy (``store.facts`` and :func:`discrepancies` count it). ``link.confirmed_at``
    is set once every disbursement of the unit has a current confirmation or dispute.
    """
    existing = await _by_key(session, PaymentConfirmation, submission_key)
    if existing is not None:
        if existing.link_id != link.id:
            raise Conflict("提交编号冲突", "submission key belongs to another link", where="submission_id")
        clean_voucher, clean_reason = confirmation_texts(voucher, reason)
        given = stored_confirmation(
            status=status,
            received_on=received_on,
            amount_fen=amount_fen,
            voucher=clean_voucher,
            dispute_kind=dispute_kind,
            reason=clean_reason,
        )
        kept = (existing.status, existing.received_on, existing.amount_fen, existing.voucher,
                existing.dispute_kind, existing.reason)  # fmt: skip
        if given != kept:
            raise ResubmittedDifferently()
        return existing, False
    campaign = await _usable_campaign(session, link, now)
    if not campaign.ask_confirmations:
        raise Invalid(
            "本次活动不需要确认资金", "this campaign does not ask for confirmations", where="status"
        )
    disbursement = await session.get(Disbursement, disbursement_id)
    if disbursement is None or disbursement.unit_id != link.unit_id:
        raise NotFound("没有这笔拨付", "no such disbursement for this unit", where="disbursement")
    project = await session.get(Project, campaign.project_id)
    assert project is not None
    voucher, reason = confirmation_texts(voucher, reason)
    errors = validate_confirmation(
        disbursement,
        status=status,
        received_on=received_on,
        amount_fen=amount_fen,
        voucher=voucher,
        dispute_kind=dispute_kind,
        reason=reason,
        today=today_in(project.timezone, now),
    )
    if errors:
        raise AnswerErrors(errors)
    confirmed = status == "confirmed"

    await _lock_unit(session, link.unit_id)
    scope = (PaymentConfirmation.disbursement_id == disbursement_id,)
    last = await session.scalar(select(func.max(PaymentConfirmation.version)).where(*scope))
    await session.execute(
        update(PaymentConfirmation)
        .where(*scope, PaymentConfirmation.is_current.is_(True))
        .values(is_current=False)
    )
    row = PaymentConfirmation(
        project_id=campaign.project_id,
        disbursement_id=disbursement_id,
        unit_id=link.unit_id,
        link_id=link.id,
        version=next_version(last),
        is_current=True,
        status=status,
        received_on=received_on if confirmed else None,
        amount_fen=amount_fen if confirmed else None,
        expected_fen=disbursement.amount_fen,
        voucher=voucher if confirmed else "",
        dispute_kind=None if confirmed else dispute_kind,
        reason=reason,
        submission_key=submission_key,
        submitted_at=now,
    )
    session.add(row)
    await session.flush()
    if link.confirmed_at is None:
        open_count = await session.scalar(
            select(func.count())
            .select_from(Disbursement)
            .where(
                Disbursement.unit_id == link.unit_id,
                Disbursement.project_id == campaign.project_id,
                ~Disbursement.id.in_(
                    select(PaymentConfirmation.disbursement_id).where(
                        PaymentConfirmation.unit_id == link.unit_id,
                        PaymentConfirmation.is_current.is_(True),
                    )
                ),
            )
        )
        if not open_count:
            link.confirmed_at = now
            await session.flush()
    return row, True


async def _by_key(session: AsyncSession, model: Any, key: str) -> Any:
    """The row of ``model`` with ``submission_key`` = ``key``, or None. Runs on every submit and
    almost always finds nothing, so it probes the unique index with a prebuilt Core select and
    loads the ORM object only on a hit."""
    stmt = _BY_KEY.get(model)
    if stmt is None:
        table = model.__table__
        stmt = _BY_KEY[model] = select(table.c.id).where(table.c.submission_key == bindparam("key"))
    found = (await session.execute(stmt, {"key": key})).scalar_one_or_none()
    return None if found is None else await session.get(model, found)


#: ``SELECT id … WHERE submission_key = :key`` per model, built once.
_BY_KEY: dict[Any, Any] = {}


# ----------------------------------------------------------------------------------- reading


async def _answers_of(session: AsyncSession, response_ids: list[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {rid: {} for rid in response_ids}
    if not response_ids:
        return out
    rows = await session.execute(
        select(Answer.response_id, Answer.question_key, Answer.value).where(
            Answer.response_id.in_(response_ids)
        )
    )
    for rid, key, value in rows.all():
        out[rid][key] = value
    return out


async def unit_disbursements(session: AsyncSession, unit_id: int) -> list[Disbursement]:
    """The unit's disbursements, oldest first."""
    stmt = (
        select(Disbursement)
        .where(Disbursement.unit_id == unit_id)
        .order_by(Disbursement.paid_on, Disbursement.id)
    )
    return list((await session.execute(stmt)).scalars())


async def current_confirmations(session: AsyncSession, link: Link) -> dict[int, PaymentConfirmation]:
    """The unit's current confirmation per disbursement id (from any link or campaign)."""
    stmt = select(PaymentConfirmation).where(
        PaymentConfirmation.unit_id == link.unit_id, PaymentConfirmation.is_current.is_(True)
    )
    return {c.disbursement_id: c for c in (await session.execute(stmt)).scalars()}


@dataclass(frozen=True)
class ResponseRecord:
    """A response with its unit and answers (question key → value)."""

    response: Response
    unit_key: str
    unit_name: str
    answers: dict[str, Any] = field(default_factory=dict)


async def list_responses(
    session: AsyncSession, project_id: int, campaign_id: int | None = None, *, current_only: bool = True
) -> list[ResponseRecord]:
    """Responses of a project (optionally one campaign), current versions only by default."""
    stmt = (
        select(Response, Unit.key, Unit.name)
        .join(Unit, Unit.id == Response.unit_id)
        .where(Response.project_id == project_id)
        .order_by(Unit.key, Response.version)
    )
    if campaign_id is not None:
        stmt = stmt.where(Response.campaign_id == campaign_id)
    if current_only:
        stmt = stmt.where(Response.is_current.is_(True))
    rows = (await session.execute(stmt)).all()
    answers = await _answers_of(session, [r.id for r, _, _ in rows])
    return [ResponseRecord(r, key, name, answers[r.id]) for r, key, name in rows]


# ------------------------------------------------------------------- the states of a payment
#
# A payment (disbursement) is ``pending`` while no current confirmation or dispute exists, else
# ``disputed``, ``confirmed``, or ``amount_differs``: confirmed with an amount other than the
# disbursed one. The comparison is with ``expected_fen``, the disbursed amount kept on the answer
# row (set when the unit answers, and moved with the ledger by :func:`follow_disbursed_amounts`
# when an amount is corrected). So the rule needs no join with the disbursements, one index
# (``ix_confirmation_amounts``) answers every count, and facts, ledger, discrepancies, the
# overview and the chat replies agree. store.payment_states.amount_differs (SQL) and answer_state
# (Python) are the rule; nothing else spells it.


async def follow_disbursed_amounts(session: AsyncSession, project_id: int) -> None:
    """After disbursement amounts changed: the current answers compare with the new amounts
    (``expected_fen`` := the disbursement's amount). What the unit confirmed (``amount_fen``) is
    never rewritten, so a correction either resolves a discrepancy or shows a new one. Call it
    wherever an amount is changed (definition load, edit, import); one UPDATE per call."""
    await session.flush()
    disbursed = (
        select(Disbursement.amount_fen)
        .where(Disbursement.id == PaymentConfirmation.disbursement_id)
        .scalar_subquery()
    )
    await session.execute(
        update(PaymentConfirmation)
        .where(
            PaymentConfirmation.project_id == project_id,
            PaymentConfirmation.is_current.is_(True),
            or_(PaymentConfirmation.expected_fen.is_(None), PaymentConfirmation.expected_fen != disbursed),
        )
        .values(expected_fen=disbursed)
        .execution_options(synchronize_session=False)
    )


async def count_payments(session: AsyncSession, project_id: int, state: str = "all") -> int:
    """How many of the project's payments are in ``state`` (all | pending | confirmed |
    amount_differs | disputed). Each is one or two index-only counts (ix_disbursement_ledger,
    ix_confirmation_amounts): no join, no probe per payment — ``disputed`` reads only the
    disputes, ``amount_differs`` the confirmations' index entries."""
    c = PaymentConfirmation
    answers = (c.project_id == project_id, c.is_current.is_(True))
    if state in ("all", "pending"):
        payments = int(
            await session.scalar(
                select(func.count()).select_from(Disbursement).where(Disbursement.project_id == project_id)
            )
            or 0
        )
        if state == "all":
            return payments
        if state == "pending":
            answered = await session.scalar(select(func.count()).select_from(c).where(*answers))
            return payments - int(answered or 0)
    if state == "disputed":
        where: tuple[Any, ...] = (c.status == "disputed",)
    elif state == "amount_differs":
        where = (amount_differs(c),)
    elif state == "confirmed":
        where = (c.status == "confirmed", ~amount_differs(c))
    else:
        raise ValueError(f"unknown payment state {state!r}")
    return int(await session.scalar(select(func.count()).select_from(c).where(*answers, *where)) or 0)


@dataclass(frozen=True)
class ConfirmationRecord:
    """A confirmation with the disbursement it is about. Money in fen."""

    confirmation: PaymentConfirmation
    unit_key: str
    unit_name: str
    disbursement_key: str
    batch: str
    disbursed_fen: int
    paid_on: date

    @property
    def difference_fen(self) -> int | None:
        """Confirmed minus disbursed (fen); None for disputes."""
        c = self.confirmation
        return None if c.status != "confirmed" or c.amount_fen is None else c.amount_fen - self.disbursed_fen

    @property
    def kind(self) -> str:
        """``ok`` | ``amount_differs`` (confirmed with another amount) | ``disputed``."""
        state = answer_state(self.confirmation)
        return "ok" if state == "confirmed" else state


async def list_confirmations(
    session: AsyncSession, project_id: int, campaign_id: int | None = None, *, current_only: bool = True
) -> list[ConfirmationRecord]:
    """Confirmations of a project (optionally those made through one campaign's links)."""
    stmt = (
        select(PaymentConfirmation, Unit.key, Unit.name, Disbursement)
        .join(Unit, Unit.id == PaymentConfirmation.unit_id)
        .join(Disbursement, Disbursement.id == PaymentConfirmation.disbursement_id)
        .where(PaymentConfirmation.project_id == project_id)
        .order_by(Unit.key, Disbursement.paid_on, PaymentConfirmation.version)
    )
    if campaign_id is not None:
        stmt = stmt.join(Link, Link.id == PaymentConfirmation.link_id).where(Link.campaign_id == campaign_id)
    if current_only:
        stmt = stmt.where(PaymentConfirmation.is_current.is_(True))
    return [
        ConfirmationRecord(c, key, name, d.key, d.batch, d.amount_fen, d.paid_on)
        for c, key, name, d in (await session.execute(stmt)).all()
    ]


async def discrepancies(session: AsyncSession, project_id: int) -> list[ConfirmationRecord]:
    """Current confirmations that disagree with the ledger: disputes, and confirmed amounts that
    differ from the disbursed amount."""
    stmt = (
        select(PaymentConfirmation, Unit.key, Unit.name, Disbursement)
        .join(Unit, Unit.id == PaymentConfirmation.unit_id)
        .join(Disbursement, Disbursement.id == PaymentConfirmation.disbursement_id)
        .where(
            PaymentConfirmation.project_id == project_id,
            PaymentConfirmation.is_current.is_(True),
            or_(PaymentConfirmation.status == "disputed", amount_differs(PaymentConfirmation)),
        )
        .order_by(Unit.key, Disbursement.paid_on)
    )
    return [
        ConfirmationRecord(c, key, name, d.key, d.batch, d.amount_fen, d.paid_on)
        for c, key, name, d in (await session.execute(stmt)).all()
    ]


async def question_labels(session: AsyncSession, project_id: int) -> dict[str, str]:
    """Question key → its text in the project's current questionnaire (for exports people read)."""
    from store.projects import current_questionnaire

    q = await current_questionnaire(session, project_id)
    if q is None:
        return {}
    return {question.key: question.text for question in questionnaire_def(q).questions}


#: How confirmation states read in exports and pages (the JSON API keeps the codes).
CONFIRMATION_STATUS_ZH = {"confirmed": "已确认", "disputed": "有争议"}
CONFIRMATION_KIND_ZH = {"ok": "金额一致", "amount_differs": "金额不一致", "disputed": "有争议"}
DISPUTE_KIND_ZH = {"not_received": "未收到", "amount_differs": "金额不符"}


async def unconfirmed_disbursements(
    session: AsyncSession, project_id: int, *, limit: int = 50
) -> tuple[int, list[tuple[Disbursement, str, str]]]:
    """``(count, first rows)`` of the project's disbursements with no current confirmation or
    dispute, as ``(disbursement, unit key, unit name)`` in ledger order (paid date, key): the
    ledger's ``pending`` page."""
    total, rows = await ledger_page(session, project_id, state="pending", limit=limit)
    return total, [(r.disbursement, r.unit_key, r.unit_name) for r in rows]


@dataclass(frozen=True)
class LedgerRow:
    """One disbursement with its unit's current answer: ``state`` is ``pending`` (no answer),
    ``confirmed``, ``amount_differs`` (confirmed with another amount) or ``disputed``;
    ``difference_fen`` is confirmed minus disbursed (None unless confirmed)."""

    disbursement: Disbursement
    unit_key: str
    unit_name: str
    confirmation: PaymentConfirmation | None

    @property
    def state(self) -> str:
        return answer_state(self.confirmation)

    @property
    def difference_fen(self) -> int | None:
        c = self.confirmation
        if c is None or c.status != "confirmed" or c.amount_fen is None:
            return None
        return c.amount_fen - self.disbursement.amount_fen


LEDGER_STATE_ZH = {
    "pending": "待确认",
    "confirmed": "已确认",
    "amount_differs": "确认金额不一致",
    "disputed": "有争议",
}


#: A state held by fewer than 1 in RARE payments is listed from its answers (then sorted);
#: a common one by walking the ledger in order until the page is full.
RARE = 10


def _state_filter(state: str, current: Any) -> tuple[Any, ...]:
    """WHERE terms selecting ``state`` on the (outer-joined) current answer ``current``."""
    if state == "pending":
        return (current.id.is_(None),)
    if state == "disputed":
        return (current.status == "disputed",)
    if state == "confirmed":
        return (current.status == "confirmed", ~amount_differs(current))
    if state == "amount_differs":
        return (amount_differs(current),)
    return ()


async def ledger_page(
    session: AsyncSession,
    project_id: int,
    *,
    state: str = "all",
    search: str = "",
    limit: int = 50,
    offset: int = 0,
    newest_first: bool = False,
) -> tuple[int, list[LedgerRow]]:
    """``(matching count, one page)`` of the ledger by paid date, then payment key; ``state``
    filters (all | pending | confirmed | amount_differs | disputed), ``search`` matches unit key
    or name. ``newest_first`` lists an answered state by the newest answer instead (the
    coordinator's overview: what is new).

    Without a search the count is :func:`count_payments` (index-only). A common state is paged
    by walking ``ix_disbursement_ledger`` in order and stopping once the page is full; a rare one
    (disputes, other amounts, few confirmations) starts from its answers, sorts only their ids
    (newest first: the index's own order, no join) and then loads the page's rows. So no view
    joins or sorts every payment of the project."""
    current = aliased(PaymentConfirmation)
    total: int | None = None
    if search or state not in ("amount_differs", "disputed"):
        total = None if search else await count_payments(session, project_id, state)
    rare = state in ("amount_differs", "disputed") or (
        state == "confirmed"
        and total is not None
        and total * RARE < await count_payments(session, project_id)
    )
    if rare and not search:
        # the page's ids, and (window count, same scan) how many match in all
        ids_q = select(current.id, func.count().over()).where(
            current.project_id == project_id, current.is_current.is_(True), *_state_filter(state, current)
        )
        if newest_first:
            ids_q = ids_q.order_by(current.id.desc())
        else:
            ids_q = ids_q.join(Disbursement, Disbursement.id == current.disbursement_id).order_by(
                Disbursement.paid_on, Disbursement.key
            )
        got = (await session.execute(ids_q.limit(limit).offset(offset))).all()
        if got:
            total = int(got[0][1])
        elif total is None:  # past the end: the count alone
            total = await count_payments(session, project_id, state)
        ids = [i for i, _ in got]
        rows = (
            await session.execute(
                select(Disbursement, Unit.key, Unit.name, current)
                .select_from(current)
                .join(Disbursement, Disbursement.id == current.disbursement_id)
                .join(Unit, Unit.id == Disbursement.unit_id)
                .where(current.id.in_(ids))
            )
        ).all()
        by_id = {c.id: LedgerRow(d, k, n, c) for d, k, n, c in rows}
        return total, [by_id[i] for i in ids if i in by_id]
    if rare:
        # a rare answered state with a search: start from those answers (ix_confirmation_amounts)
        stmt = (
            select(Disbursement, Unit.key, Unit.name, current)
            .select_from(current)
            .join(Disbursement, Disbursement.id == current.disbursement_id)
            .join(Unit, Unit.id == Disbursement.unit_id)
            .where(current.project_id == project_id, current.is_current.is_(True))
        )
    else:
        # walk the ledger in order (ix_disbursement_ledger), probing each payment's answer
        stmt = (
            select(Disbursement, Unit.key, Unit.name, current)
            .join(Unit, Unit.id == Disbursement.unit_id)
            .outerjoin(
                current, and_(current.disbursement_id == Disbursement.id, current.is_current.is_(True))
            )
            .where(Disbursement.project_id == project_id)
        )
    if search:
        like = f"%{search.replace('%', '').replace('_', '')}%"
        stmt = stmt.where(or_(Unit.key.like(like), Unit.name.like(like)))  # type: ignore[attr-defined]
    stmt = stmt.where(*_state_filter(state, current))
    if total is None:
        total = int((await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one())
    if total <= offset:
        return total, []
    order = (current.id.desc(),) if newest_first and state not in ("all", "pending") else ()
    page = stmt.order_by(*order, Disbursement.paid_on, Disbursement.key).limit(limit).offset(offset)
    return total, [LedgerRow(d, k, n, c) for d, k, n, c in (await session.execute(page)).all()]
