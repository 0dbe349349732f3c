"""The unit page's HTML, built by hand from pre-rendered pieces (the page's hot path).

The page is byte-for-byte what ``templates/unit.html`` (with ``thanks.html``, inside
``base.html``) renders; ``tests/bot/test_unit_html.py`` renders both over many page states
(answers, errors, payments, thank-you states, hostile text) and compares them. The templates stay
the readable reference: change the page there first, then here, and the test says when they agree.

Why not Jinja on every request: rendering the 10 KB page cost ≈ 0.45–0.85 ms of event-loop CPU
(~250 escapes and attribute lookups), most of it for parts that only change with the
questionnaire. Here everything that depends only on the questionnaire — question blocks, option
labels, legends, limits — is escaped and joined ONCE per questionnaire ``(id, version)``
(:class:`CompiledQuestionnaire`; questionnaire rows are immutable, a changed questionnaire is a new
version), and a request only splices in its own values: names, dates, CSRF tokens, the current
answers (``checked`` / field values), error messages. Every user-supplied string is escaped
with ``markupsafe.escape`` (the function Jinja's autoescape uses), so the escaping is identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import escape

from bot.forms import Errors, yuan
from config.definition import QuestionDef, QuestionnaireDef
from config.timefmt import zone_name
from store.linkpage import PageData, PaymentRow

STATUS_TEXT = {"confirmed": "已确认收到", "disputed": "有异议"}
DISPUTE_TEXT = {"not_received": "未收到这笔资金", "amount_differs": "收到的金额不一致"}
CHOICE_KINDS = ("scale", "single", "multi")
#: Free-text answers without their own ``max_length`` (the template's ``q.max_length or 2000``).
TEXT_MAX = 2000
_REQUIRED = ' <span class="req" aria-hidden="true">*</span><span class="muted">（必答）</span>'


def _e(value: Any) -> str:
    return str(escape(value))


def fmt_dt(value: datetime | None, tz: ZoneInfo) -> str:
    """A stored UTC datetime as the project's local ``YYYY-MM-DD HH:MM`` ('' for None)."""
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if value else ""


# ----------------------------------------------------------------------------------- per questionnaire


@dataclass(frozen=True, slots=True)
class _Option:
    value: str
    head: str  # '<label …><input … value="…"'  (then: checked, aria-invalid, tail)
    tail: str  # '> label</label>\n'


@dataclass(frozen=True, slots=True)
class _Block:
    """One question's markup, split where the request's values go."""

    key: str
    choice: bool
    multi: bool
    #: choice: '<fieldset class="q"' … ; text/number: '<div class="q">\n<label …>…</label>\n'
    open_ok: str
    open_err: str  # the same with the error's aria-describedby (choice) / unchanged (others)
    err_head: str  # '<p class="err" id="e-q-key">'
    options: tuple[_Option, ...]
    close: str  # '</fieldset>\n' or '</div>\n'
    number: bool
    field_head: str  # '<input … value="' or '<textarea … maxlength="…"'
    invalid: str  # ' aria-invalid="true" aria-describedby="e-q-key"'
    thanks_head: str  # '<dt>text</dt><dd>'


class CompiledQuestionnaire:
    """The questionnaire's static markup, escaped once. Immutable once built."""

    def __init__(self, qdef: QuestionnaireDef) -> None:
        self.qdef = qdef
        self.keys = frozenset(q.key for q in qdef.questions)
        self.head = f"<h2>一、{_e(qdef.title)}</h2>\n" + (
            f'<p class="muted">{_e(qdef.intro)}</p>' if qdef.intro else ""
        )
        self.blocks = tuple(self._block(i, q) for i, q in enumerate(qdef.questions, 1))

    def _block(self, index: int, q: QuestionDef) -> _Block:
        fid = f"q-{q.key}"
        name = _e(f"q_{q.key}")
        efid = _e(fid)
        required = _REQUIRED if q.required else ""
        err_head = f'<p class="err" id="e-{efid}">'
        invalid = f' aria-invalid="true" aria-describedby="e-{efid}"'
        thanks_head = f"<dt>{_e(q.text)}</dt><dd>"
        if q.kind in CHOICE_KINDS:
            legend = f"<legend>{index}. {_e(q.text)}{required}" + (
                '<span class="muted">（可多选）</span>' if q.kind == "multi" else ""
            )
            legend += "</legend>\n"
            kind = "checkbox" if q.kind == "multi" else "radio"
            options = tuple(
                _Option(
                    o,
                    f'<label class="opt" for="{efid}-{n}"><input type="{kind}" id="{efid}-{n}" '
                    f'name="{name}" value="{_e(o)}"',
                    f"> {_e(o)}</label>\n",
                )
                for n, o in enumerate(self.qdef.options_for(q), 1)
            )
            return _Block(
                key=q.key,
                choice=True,
                multi=q.kind == "multi",
                open_ok=f'<fieldset class="q">\n{legend}',
                open_err=f'<fieldset class="q" aria-describedby="e-{efid}">\n{legend}',
                err_head=err_head,
                options=options,
                close="</fieldset>\n",
                number=False,
                field_head="",
                invalid=invalid,
                thanks_head=thanks_head,
            )
        limits = ""
        if q.kind == "number" and (q.min is not None or q.max is not None):
            parts = []
            if q.min is not None:
                parts.append(f"≥ {_e(q.min)}")
            if q.max is not None:
                parts.append(f"≤ {_e(q.max)}")
            limits = f'<span class="muted">（{"，".join(parts)}）</span>'
        if q.kind == "text":
            limits += f'<span class="muted">（最多 {_e(q.max_length or TEXT_MAX)} 字）</span>'
        opening = (
            f'<div class="q">\n<label for="{efid}"><b>{index}. {_e(q.text)}</b>{required}{limits}</label>\n'
        )
        if q.kind == "number":
            field_head = f'<input type="text" inputmode="decimal" id="{efid}" name="{name}" value="'
        else:
            field_head = f'<textarea id="{efid}" name="{name}" maxlength="{_e(q.max_length or TEXT_MAX)}"'
        return _Block(
            key=q.key,
            choice=False,
            multi=False,
            open_ok=opening,
            open_err=opening,
            err_head=err_head,
            options=(),
            close="</div>\n",
            number=q.kind == "number",
            field_head=field_head,
            invalid=invalid,
            thanks_head=thanks_head,
        )


# ----------------------------------------------------------------------------------- the page shell


@dataclass(frozen=True, slots=True)
class _Shell:
    """``base.html`` around the body, rendered once by Jinja with markers and split there."""

    before_title: str
    after_title: str
    end: str


def shell_from(env: jinja2.Environment) -> _Shell:
    marker_title, marker_body = "\x00TITLE\x00", "\x00BODY\x00"
    page = env.from_string(
        '{% extends "base.html" %}{% block body %}' + marker_body + "{% endblock %}"
    ).render(lang="zh-CN", title=marker_title)
    before_title, rest = page.split(marker_title)
    after_title, end = rest.split(marker_body)
    return _Shell(before_title, after_title, end)


_STYLE = """<style>
.opt{display:flex;gap:.5rem;align-items:center;padding:.45rem .25rem;border-bottom:1px solid #eef1f4}
.opt input{width:1.15rem;height:1.15rem;margin:0;flex:none}
.q{margin:0 0 1.25rem}.q legend{font-weight:600}
.sub{border-left:3px solid var(--line);padding:.25rem 0 .25rem .75rem;margin:.5rem 0 1rem}
.done{border-color:var(--ok);background:#f0fff4}.badge{font-size:.85rem;border-radius:1rem;padding:.05rem .5rem;background:#eef1f4;white-space:nowrap}
.badge.ok{background:#dafbe1;color:var(--ok)}.badge.bad{background:#ffebe9;color:var(--bad)}
dl{margin:.25rem 0}dt{color:var(--muted);font-size:.85rem}dd{margin:0 0 .4rem}
.card>:first-child{margin-top:0}[aria-invalid=true]{border-color:var(--bad)!important}.errs{border-color:var(--bad)}
</style>
<header class="card">
<p class="muted">"""
_FOOTER = '<p class="muted">本页面为贵单位专属，请勿转发。如有疑问请联系项目联系人。</p>\n'
_PAY_INTRO = '、资金到账确认</h2>\n<p class="muted">请逐笔核对下列拨付给贵单位的项目资金，确认到账或提出异议。金额单位：元。</p>\n'
_PAY_FIELDS = (
    ("received_on", "到账日期", "date"),
    ("amount", "到账金额（元）", "text"),
    ("voucher", "收款凭证号（选填）", "text"),
)


# ----------------------------------------------------------------------------------- per request


@dataclass(slots=True)
class PaymentForm:
    """One payment form as shown: the row, its CSRF token and submission id, the values to fill
    in and the messages by field (both empty unless re-rendered after a refused submit)."""

    row: PaymentRow
    csrf: str
    submission_id: str
    values: dict[str, str]
    errors: Errors


def payment_values(row: PaymentRow) -> dict[str, str]:
    """Pre-fill: the current confirmation, else the disbursed amount as the likely answer."""
    if row.status is None:
        return {"status": "", "amount": yuan(row.amount_fen).replace(",", "")}
    return {
        "status": row.status,
        "received_on": row.received_on.isoformat() if row.received_on else "",
        "amount": yuan(row.confirmed_fen).replace(",", ""),
        "voucher": row.confirmed_voucher or "",
        "dispute_kind": row.dispute_kind or "",
        "reason": row.reason or "",
    }


def render_page(
    shell: _Shell,
    page: PageData,
    cq: CompiledQuestionnaire | None,
    *,
    token: str,
    answers_csrf: str,
    answers_submission_id: str,
    payments: list[PaymentForm],
    today: date,
    answers: Mapping[str, Any] | None = None,
    answer_errors: Errors | None = None,
    done: str = "",
) -> str:
    """The whole page. ``answers``/``answer_errors`` replace the stored answers after a refused
    submit; ``done`` is ``answers`` or ``pay-{id}`` for the thank-you state (ignored when there
    is nothing to thank for, as in the template)."""
    link = page.link
    tz = ZoneInfo(link.timezone)
    answered_at = fmt_dt(page.answered_at, tz)
    cur_answers = page.answers if answers is None else answers
    errors = answer_errors or {}
    out: list[str] = [
        shell.before_title,
        _e(f"{link.unit_name} · {link.campaign_name}"),
        shell.after_title,
        _STYLE,
        _e(link.project_name),
        "</p>\n<h1>",
        _e(link.unit_name),
        "</h1>\n<p>",
        _e(link.campaign_name),
        '<br><span class="muted">填写时间：',
        fmt_dt(link.opens_at, tz),
        " 至 ",
        fmt_dt(link.closes_at, tz),
        "（",
        _e(zone_name(link.timezone)),
        "）；截止前可随时修改。</span></p>\n</header>\n\n",
    ]
    _thanks(out, done, cq, cur_answers, answered_at, payments, tz)
    out.append("\n")
    if cq is not None:
        _questionnaire(out, cq, token, answers_csrf, answers_submission_id, cur_answers, answered_at, errors)
    out.append("\n")
    if payments:
        out.append("<h2>二" if cq is not None else "<h2>一")
        out.append(_PAY_INTRO)
        etoken = _e(token)
        for form in payments:
            _payment(out, form, etoken, today, tz)
    out.append(_FOOTER)
    out.append(shell.end)
    return "".join(out)


def _questionnaire(
    out: list[str],
    cq: CompiledQuestionnaire,
    token: str,
    csrf: str,
    submission_id: str,
    answers: Mapping[str, Any],
    answered_at: str,
    errors: Errors,
) -> None:
    out.append('<section class="card errs" id="q">\n' if errors else '<section class="card" id="q">\n')
    out.append(cq.head)
    if answered_at and not errors:
        out.append(
            f'<p><span class="badge ok">已提交 {_e(answered_at)}</span> 下面是您的当前答案，可修改后重新提交。</p>'
        )
    if errors:
        out.append(f'<p class="err" role="alert">有 {len(errors)} 处需要修改，请查看标红的题目。</p>\n')
        for k, m in errors.items():
            if k not in cq.keys:
                out.append(f'<p class="err">{_e(k)}：{_e(m[0])}</p>')
    out.append(
        f'<form method="post" action="/l/{_e(token)}/answers#q" accept-charset="utf-8">\n'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">\n'
        f'<input type="hidden" name="submission_id" value="{_e(submission_id)}">\n'
    )
    for b in cq.blocks:
        err = errors.get(b.key)
        cur = answers.get(b.key)
        if b.choice:
            out.append(b.open_err if err else b.open_ok)
            if err:
                out.append(f"{b.err_head}{_e(err[0])}</p>")
            invalid = ' aria-invalid="true"' if err else ""
            for o in b.options:
                if isinstance(cur, str):
                    checked = cur == o.value
                else:
                    checked = bool(cur) and o.value in cur  # type: ignore[operator]
                out.append(o.head)
                if checked:
                    out.append(" checked")
                out.append(invalid)
                out.append(o.tail)
            out.append(b.close)
        else:
            out.append(b.open_ok)
            if err:
                out.append(f"{b.err_head}{_e(err[0])}</p>")
            out.append(b.field_head)
            if b.number:
                out.append(_e(cur) if cur is not None else "")
                out.append('"')
                if err:
                    out.append(b.invalid)
                out.append(">\n")
            else:
                if err:
                    out.append(b.invalid)
                out.append(">")
                out.append(_e(cur) if isinstance(cur, str) else "")
                out.append("</textarea>\n")
            out.append(b.close)
    out.append(
        '<button type="submit">提交修改</button>\n'
        if answered_at
        else '<button type="submit">提交问卷</button>\n'
    )
    out.append("</form>\n</section>\n")


def _payment(out: list[str], form: PaymentForm, etoken: str, today: date, tz: ZoneInfo) -> None:
    p, e, val = form.row, form.errors, form.values
    fid = f"p{p.id}"
    out.append(
        f'<section class="card errs" id="pay-{p.id}">\n' if e else f'<section class="card" id="pay-{p.id}">\n'
    )
    out.append(f"<h3>第 {_e(p.batch)} 批拨付 ")
    if p.status is not None:
        ok = p.status == "confirmed" and not _differs(p)
        out.append(
            f'<span class="badge {"ok" if ok else "bad"}">{_e(STATUS_TEXT.get(p.status, p.status))}</span></h3>\n'
        )
    else:
        out.append('<span class="badge">待确认</span></h3>\n')
    out.append(
        f'<table>\n<tr><th scope="row">拨付金额</th><td class="num">{_e(yuan(p.amount_fen))} 元</td></tr>\n'
        f'<tr><th scope="row">拨付日期</th><td class="num">{_e(p.paid_on)}</td></tr>\n'
    )
    if p.voucher:
        out.append(f'<tr><th scope="row">拨付文号</th><td class="num">{_e(p.voucher)}</td></tr>')
    out.append("</table>\n")
    if e:
        out.append(f'<p class="err" role="alert">有 {len(e)} 处需要修改。</p>')
    out.append(
        f'<form method="post" action="/l/{etoken}/pay/{p.id}#pay-{p.id}" accept-charset="utf-8">\n'
        f'<input type="hidden" name="csrf" value="{_e(form.csrf)}">\n'
        f'<input type="hidden" name="submission_id" value="{_e(form.submission_id)}">\n'
    )
    status_err = e.get("status")
    out.append(f'<fieldset aria-describedby="e-{fid}-status">\n' if status_err else "<fieldset>\n")
    out.append("<legend>这笔资金是否已收到？</legend>\n")
    if status_err:
        out.append(f'<p class="err" id="e-{fid}-status">{_e(status_err[0])}</p>')
    status = val.get("status")
    out.append(
        f'<label class="opt" for="{fid}-ok"><input type="radio" id="{fid}-ok" name="status" value="confirmed"'
        + (" checked" if status == "confirmed" else "")
        + "> 已收到，金额如下</label>\n"
        f'<label class="opt" for="{fid}-no"><input type="radio" id="{fid}-no" name="status" value="disputed"'
        + (" checked" if status == "disputed" else "")
        + '> 有异议</label>\n</fieldset>\n<div class="sub">\n<p class="muted">选择“已收到”时填写：</p>\n'
    )
    for name, text, kind in _PAY_FIELDS:
        err = e.get(name)
        out.append(f'<label for="{fid}-{name}">{text}</label>\n')
        if err:
            out.append(f'<p class="err" id="e-{fid}-{name}">{_e(err[0])}</p>')
        out.append(f'<input type="{kind}" id="{fid}-{name}" name="{name}" value="{_e(val.get(name, ""))}"')
        if name == "received_on":
            out.append(f' max="{_e(today)}"')
        elif name == "amount":
            out.append(' inputmode="decimal"')
        else:
            out.append(' maxlength="100"')
        if err:
            out.append(f' aria-invalid="true" aria-describedby="e-{fid}-{name}"')
        out.append(">\n")
    kind_err = e.get("dispute_kind")
    out.append('</div>\n<div class="sub">\n')
    out.append(f'<fieldset aria-describedby="e-{fid}-dispute_kind">\n' if kind_err else "<fieldset>\n")
    out.append('<legend class="muted">选择“有异议”时：</legend>\n')
    if kind_err:
        out.append(f'<p class="err" id="e-{fid}-dispute_kind">{_e(kind_err[0])}</p>')
    chosen = val.get("dispute_kind")
    for k, t in DISPUTE_TEXT.items():
        out.append(
            f'<label class="opt" for="{fid}-{k}"><input type="radio" id="{fid}-{k}" name="dispute_kind" value="{k}"'
            + (" checked" if chosen == k else "")
            + f"> {t}</label>\n"
        )
    out.append(f'</fieldset>\n<label for="{fid}-reason">说明（最多 500 字）</label>\n')
    reason_err = e.get("reason")
    if reason_err:
        out.append(f'<p class="err" id="e-{fid}-reason">{_e(reason_err[0])}</p>')
    out.append(f'<textarea id="{fid}-reason" name="reason" maxlength="500"')
    if reason_err:
        out.append(f' aria-invalid="true" aria-describedby="e-{fid}-reason"')
    out.append(f">{_e(val.get('reason', ''))}</textarea>\n</div>\n")
    out.append(
        '<button type="submit">提交修改</button>\n'
        if p.status is not None
        else '<button type="submit">提交确认</button>\n'
    )
    out.append("</form>\n</section>\n")


def _differs(p: PaymentRow) -> bool:
    return p.status == "confirmed" and p.confirmed_fen != p.amount_fen


def _thanks(
    out: list[str],
    done: str,
    cq: CompiledQuestionnaire | None,
    answers: Mapping[str, Any],
    answered_at: str,
    payments: list[PaymentForm],
    tz: ZoneInfo,
) -> None:
    """The thank-you state (``thanks.html``) after a submit, if there is something to show."""
    if done == "answers" and answered_at and cq is not None:
        out.append(
            '<section class="card done" id="done" role="status" aria-live="polite">\n'
            '<h2 class="ok">已提交，谢谢！</h2>\n'
            f"<p>已记录您的问卷答案（{_e(answered_at)}）：</p>\n<dl>\n"
        )
        for b in cq.blocks:
            a = answers.get(b.key)
            out.append(b.thanks_head)
            if a is None or a == "" or a == []:
                out.append("（未填）")
            elif isinstance(a, str):
                out.append(_e(a))
            else:
                out.append(_e("、".join(map(str, a))))
            out.append("</dd>\n")
        out.append('</dl>\n<p><a href="#q">修改答案</a></p>\n</section>\n')
        return
    if not done.startswith("pay-"):
        return
    form = next((f for f in payments if f"pay-{f.row.id}" == done), None)
    if form is None or form.row.status is None:
        return
    p = form.row
    out.append(
        '<section class="card done" id="done" role="status" aria-live="polite">\n'
        '<h2 class="ok">已提交，谢谢！</h2>\n'
        f"<p>已记录第 {_e(p.batch)} 批拨付（{_e(yuan(p.amount_fen))} 元）的确认"
        f"（{_e(fmt_dt(p.submitted_at, tz))}）：</p>\n<dl>\n"
        f"<dt>结果</dt><dd>{_e(STATUS_TEXT.get(p.status, p.status))}</dd>\n"  # type: ignore[arg-type]
    )
    if p.status == "confirmed":
        out.append(
            f"<dt>到账日期</dt><dd>{_e(p.received_on.isoformat() if p.received_on else '')}</dd>\n"
            f"<dt>到账金额</dt><dd>{_e(yuan(p.confirmed_fen))} 元"
            + (' <span class="badge bad">与拨付金额不一致</span>' if _differs(p) else "")
            + "</dd>\n"
        )
        if p.confirmed_voucher:
            out.append(f"<dt>凭证号</dt><dd>{_e(p.confirmed_voucher)}</dd>")
    else:
        out.append(f"<dt>异议类型</dt><dd>{_e(DISPUTE_TEXT.get(p.dispute_kind or '', ''))}</dd>\n")
    if p.reason:
        out.append(f"<dt>说明</dt><dd>{_e(p.reason)}</dd>")
    out.append(f'</dl>\n<p><a href="#pay-{p.id}">修改</a></p>\n</section>\n')


# ----------------------------------------------------------------------------------- after closing


def render_closed(env: jinja2.Environment, page: PageData) -> str:
    """The read-only page of a closed campaign (``templates/unit_closed.html``): what the unit
    submitted — its current answers and each payment's current confirmation — and no form. Not
    the hot path (only after closing, only for units that submitted), so plain Jinja."""
    link = page.link
    tz = ZoneInfo(link.timezone)
    payments = [
        {
            "id": p.id,
            "batch": p.batch,
            "amount": yuan(p.amount_fen),
            "paid_on": p.paid_on.isoformat(),
            "voucher": p.voucher,
            "status": p.status,
            "status_text": STATUS_TEXT.get(p.status or "", ""),
            "ok": p.status == "confirmed" and not _differs(p),
            "received_on": p.received_on.isoformat() if p.received_on else "",
            "confirmed": yuan(p.confirmed_fen),
            "confirmed_voucher": p.confirmed_voucher,
            "dispute_text": DISPUTE_TEXT.get(p.dispute_kind or "", ""),
            "reason": p.reason,
            "submitted_at": fmt_dt(p.submitted_at, tz),
        }
        for p in page.payments
    ]
    view = {
        "project_name": link.project_name,
        "unit_name": link.unit_name,
        "campaign_name": link.campaign_name,
        "opens": fmt_dt(link.opens_at, tz),
        "closes": fmt_dt(link.closes_at, tz),
        "tz_name": zone_name(link.timezone),
        "questionnaire": page.questionnaire,
        "answers": page.answers,
        "answered_at": fmt_dt(page.answered_at, tz),
        "payments": payments,
    }
    return env.get_template("unit_closed.html").render(
        lang="zh-CN", title=f"{link.unit_name} · {link.campaign_name}（已截止）", v=view
    )
