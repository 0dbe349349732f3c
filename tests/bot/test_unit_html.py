"""The hand-built unit page is byte-for-byte what the reference templates render.

``bot.unit_html`` splices the page from pieces pre-rendered per questionnaire version; the Jinja
templates ``unit.html``/``thanks.html`` in ``base.html`` are the readable reference. Each case
renders one page state both ways (the Jinja side gets the view the old ORM handler built) and
compares the bytes. Pure: no database, no server.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.app import template_env
from bot.forms import Errors, yuan
from bot.unit_html import (
    DISPUTE_TEXT,
    STATUS_TEXT,
    CompiledQuestionnaire,
    PaymentForm,
    fmt_dt,
    payment_values,
    render_page,
    shell_from,
)
from config.definition import QuestionnaireDef
from config.timefmt import zone_name
from store.linkpage import LinkRow, PageData, PaymentRow

EVIL = '<script>alert("x&\'y")</script>'
NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

SIMPLE = QuestionnaireDef.model_validate(
    {
        "title": "满意度调查",
        "satisfaction_question": "overall",
        "questions": [
            {"key": "guide", "text": "您对申报指南是否满意？"},
            {"key": "overall", "text": "总体满意度"},
            {"key": "suggestion", "text": "意见和建议", "kind": "text", "required": False, "max_length": 500},
        ],
    }
)
RICH = QuestionnaireDef.model_validate(
    {
        "title": f"问卷 {EVIL}",
        "intro": f"说明 {EVIL}",
        "satisfaction_question": "overall",
        "questions": [
            {"key": "overall", "text": f"总体 {EVIL}"},
            {"key": "staff", "text": "人数", "kind": "number", "min": "0", "max": "1000"},
            {"key": "low", "text": "下限", "kind": "number", "min": "1.5", "required": False},
            {"key": "high", "text": "上限", "kind": "number", "max": "9", "required": False},
            {"key": "free", "text": "任意数", "kind": "number", "required": False},
            {
                "key": "via",
                "text": "渠道",
                "kind": "multi",
                "options": ["官网", "微信", EVIL],
                "required": False,
            },
            {"key": "size", "text": "规模", "kind": "single", "options": ["小", "中", "大"]},
            {"key": "note", "text": "备注", "kind": "text"},
        ],
    }
)


def _link(**kw: Any) -> LinkRow:
    base = LinkRow(
        link_id=7,
        unit_id=3,
        campaign_id=2,
        revoked_at=None,
        opened_at=None,
        answered_at=None,
        confirmed_at=None,
        campaign_status="open",
        opens_at=datetime(2026, 3, 1, 0, 0, tzinfo=UTC),
        closes_at=datetime(2026, 3, 15, 16, 0, tzinfo=UTC),
        ask_confirmations=True,
        campaign_name="2023年度满意度调查",
        project_id=1,
        questionnaire_id=5,
        questionnaire_version=1,
        unit_name="乌鲁木齐米东恒通商标事务所（示例）",
        project_name="乌鲁木齐知识产权项目",
        timezone="Asia/Shanghai",
    )
    return replace(base, **kw)


def _pay(id: int, **kw: Any) -> PaymentRow:
    base = PaymentRow(
        id=id,
        batch="1",
        amount_fen=15_562_800,
        paid_on=date(2023, 2, 20),
        voucher="",
        status=None,
        received_on=None,
        confirmed_fen=None,
        confirmed_voucher=None,
        dispute_kind=None,
        reason=None,
        submitted_at=None,
    )
    return replace(base, **kw)


CONFIRMED = {"status": "confirmed", "received_on": date(2023, 2, 22), "confirmed_fen": 15_562_800}
SUBMITTED = {"submitted_at": datetime(2026, 3, 1, 3, 4, tzinfo=UTC)}
PAYMENTS = (
    _pay(11),
    _pay(12, batch="2", voucher="财拨-002", **CONFIRMED, confirmed_voucher="收-1", reason="", **SUBMITTED),
    _pay(13, batch=EVIL, voucher=EVIL, **{**CONFIRMED, "confirmed_fen": 100_050}, reason=EVIL, **SUBMITTED),
    _pay(
        14, status="disputed", dispute_kind="amount_differs", reason="少了", confirmed_voucher="", **SUBMITTED
    ),
)
ANSWERED = {"guide": "非常满意", "overall": "一般", "suggestion": f"更快 {EVIL}"}
RICH_ANSWERS = {
    "overall": "非常满意",
    "staff": "12.50",
    "via": ["官网", EVIL],
    "size": "中",
    "note": f"多行\n{EVIL}",
}


def _jinja(
    page: PageData,
    *,
    token: str,
    csrf: str,
    sid: str,
    payments: list[PaymentForm],
    today: date,
    answers: dict[str, Any] | None = None,
    answer_errors: Errors | None = None,
    done: str = "",
) -> str:
    """The reference: the view the ORM handler built, through the Jinja templates."""
    link = page.link
    tz = ZoneInfo(link.timezone)
    pviews = []
    for f in payments:
        r = f.row
        current = None
        if r.status is not None:
            current = {
                "status": r.status,
                "status_text": STATUS_TEXT.get(r.status, r.status),
                "received_on": r.received_on.isoformat() if r.received_on else "",
                "amount": yuan(r.confirmed_fen),
                "differs": r.status == "confirmed" and r.confirmed_fen != r.amount_fen,
                "voucher": r.confirmed_voucher,
                "dispute_kind": r.dispute_kind or "",
                "dispute_text": DISPUTE_TEXT.get(r.dispute_kind or "", ""),
                "reason": r.reason,
                "submitted_at": fmt_dt(r.submitted_at, tz),
            }
        pviews.append(
            SimpleNamespace(
                id=r.id,
                batch=r.batch,
                amount=yuan(r.amount_fen),
                paid_on=r.paid_on,
                voucher=r.voucher,
                current=current,
                csrf=f.csrf,
                submission_id=f.submission_id,
                values=f.values,
                errors=f.errors,
            )
        )
    v = SimpleNamespace(
        token=token,
        project_name=link.project_name,
        unit_name=link.unit_name,
        campaign_name=link.campaign_name,
        opens=fmt_dt(link.opens_at, tz),
        closes=fmt_dt(link.closes_at, tz),
        tz_name=zone_name(link.timezone),
        questionnaire=page.questionnaire,
        answers=page.answers if answers is None else answers,
        answered_at=fmt_dt(page.answered_at, tz),
        answers_csrf=csrf,
        answers_submission_id=sid,
        payments=pviews,
        today=today,
        answer_errors=answer_errors or {},
    )
    done_payment = None
    if done.startswith("pay-"):
        done_payment = next((p for p in pviews if f"pay-{p.id}" == done), None)
        if done_payment is None or done_payment.current is None:
            done = ""
    if done == "answers" and not v.answered_at:
        done = ""
    return (
        template_env()
        .get_template("unit.html")
        .render(
            lang="zh-CN",
            title=f"{v.unit_name} · {v.campaign_name}",
            v=v,
            done=done,
            done_payment=done_payment,
            dispute_text=DISPUTE_TEXT,
        )
    )


def _forms(page: PageData, override: tuple[int, dict[str, str], Errors] | None = None) -> list[PaymentForm]:
    out = []
    for row in page.payments:
        form = PaymentForm(row, f"csrf{row.id}", f"sid{row.id}", payment_values(row), {})
        if override is not None and override[0] == row.id:
            form.values, form.errors = override[1], override[2]
        out.append(form)
    return out


PAY_ERRORS: Errors = {
    "status": ("请选择“已收到”或“有异议”", "choose"),
    "received_on": ("日期格式应为 年-月-日", "date"),
    "amount": ("金额格式不正确", "amount"),
    "voucher": ("凭证号最多 100 个字", "voucher"),
    "dispute_kind": ("请选择异议类型", "kind"),
    "reason": (f"说明 {EVIL}", "reason"),
}
PAY_VALUES = {
    "status": "disputed",
    "received_on": "22/02/2023",
    "amount": EVIL,
    "voucher": "v",
    "dispute_kind": "not_received",
    "reason": EVIL,
}

CASES: dict[str, dict[str, Any]] = {
    "fresh page": {"page": PageData(_link(), SIMPLE, {}, None, PAYMENTS[:1])},
    "answered, confirmed, differing and disputed payments": {
        "page": PageData(_link(), SIMPLE, ANSWERED, NOW, PAYMENTS)
    },
    "refused answers with a message by each field and an unknown question": {
        "page": PageData(_link(), SIMPLE, ANSWERED, NOW, PAYMENTS),
        "answers": {"guide": "特别满意", "overall": "", "suggestion": EVIL, "bogus": "x"},
        "answer_errors": {
            "guide": ("请从给出的选项中选择", "choose"),
            "overall": ("此题必答", "required"),
            "suggestion": (f"最多 500 个字 {EVIL}", "long"),
            "bogus": ("没有这个问题", "no such question"),
        },
    },
    "every question kind, answered": {"page": PageData(_link(), RICH, RICH_ANSWERS, NOW, ())},
    "every question kind, refused": {
        "page": PageData(_link(), RICH, {}, None, ()),
        "answers": {"overall": ["非常满意"], "staff": EVIL, "via": ["微信"], "size": "巨", "note": EVIL},
        "answer_errors": {
            k: (f"错 {EVIL}", "bad") for k in ("overall", "staff", "via", "size", "note", "low")
        },
    },
    "refused payment keeps its input": {
        "page": PageData(_link(), SIMPLE, {}, None, PAYMENTS),
        "payment": (13, PAY_VALUES, PAY_ERRORS),
    },
    "thank-you state after answers": {
        "page": PageData(_link(), RICH, RICH_ANSWERS, NOW, ()),
        "done": "answers",
    },
    "thank-you state with unanswered questions": {
        "page": PageData(_link(), RICH, {"overall": "一般", "via": []}, NOW, ()),
        "done": "answers",
    },
    "thank-you for a confirmation": {"page": PageData(_link(), SIMPLE, {}, None, PAYMENTS), "done": "pay-13"},
    "thank-you for a dispute": {"page": PageData(_link(), SIMPLE, {}, None, PAYMENTS), "done": "pay-14"},
    "thank-you for a payment without confirmation shows none": {
        "page": PageData(_link(), SIMPLE, {}, None, PAYMENTS),
        "done": "pay-11",
    },
    "thank-you for answers never given shows none": {
        "page": PageData(_link(), SIMPLE, {}, None, ()),
        "done": "answers",
    },
    "payments only": {"page": PageData(_link(questionnaire_id=None), None, {}, None, PAYMENTS)},
    "questionnaire only, hostile names, another timezone": {
        "page": PageData(
            _link(unit_name=EVIL, campaign_name=EVIL, project_name=EVIL, timezone="Asia/Urumqi"),
            SIMPLE,
            ANSWERED,
            NOW,
            (),
        )
    },
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_fast_page_is_byte_for_byte_the_template_page(case: dict[str, Any]) -> None:
    page: PageData = case["page"]
    payments = _forms(page, case.get("payment"))
    common: dict[str, Any] = {
        "token": "T" * 32,
        "payments": payments,
        "today": date(2026, 3, 2),
        "answers": case.get("answers"),
        "answer_errors": case.get("answer_errors"),
        "done": case.get("done", ""),
    }
    cq = CompiledQuestionnaire(page.questionnaire) if page.questionnaire is not None else None
    fast = render_page(
        shell_from(template_env()),
        page,
        cq,
        answers_csrf="c" * 32,
        answers_submission_id="s" * 32,
        **common,
    )
    reference = _jinja(page, csrf="c" * 32, sid="s" * 32, **common)
    assert fast == reference


def test_an_unknown_done_value_shows_no_thank_you_state() -> None:
    page = PageData(_link(), SIMPLE, ANSWERED, NOW, PAYMENTS)
    html = render_page(
        shell_from(template_env()),
        page,
        CompiledQuestionnaire(SIMPLE),
        token="T" * 32,
        answers_csrf="c",
        answers_submission_id="s",
        payments=_forms(page),
        today=date(2026, 3, 2),
        done="bogus",
    )
    assert "已提交，谢谢" not in html and 'id="done"' not in html
