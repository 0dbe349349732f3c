"""What people type on the unit page: control characters, strict dates and amounts, a fuzzed parser.

Control characters are cleaned where text comes in (``config.text.clean_text``, called by
``store.answers``), so the XLSX exports built from stored text never meet one. Dates and amounts
parse exactly as the page's hints say (``2024-03-01``, ``12,345.67``); anything else is refused
next to its field and nothing is stored.
"""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from sqlalchemy import func, select

from bot.errors import ApiError
from bot.forms import MAX_FORM_FIELDS, parse_body, parse_confirmation, parse_date, parse_yuan
from config.definition import QuestionnaireDef
from config.text import clean_text, has_control
from store.answers import list_confirmations, list_responses, validate_answers
from store.db import SessionMaker, transaction
from store.models import Disbursement, PaymentConfirmation, Response
from store.tokens import create_token
from tests.bot.conftest import Launched, page_form
from tests.conftest import Clock

GOOD = {"q_guide": "非常满意", "q_review": "比较满意", "q_funds": "一般", "q_overall": "非常满意"}
CODE = "urumqi-ip-2023"
#: Every character openpyxl refuses in a cell (its ILLEGAL_CHARACTERS_RE), plus DEL and C1.
CONTROLS = "".join(map(chr, [*range(0, 9), 11, 12, *range(14, 32), 127, 0x85, 0x9F]))


async def _first_disbursement(sm: SessionMaker, launched: Launched, unit: str) -> int:
    async with sm() as session:
        stmt = select(Disbursement.id).where(Disbursement.unit_id == launched.unit_ids[unit])
        return int(
            (await session.execute(stmt.order_by(Disbursement.paid_on, Disbursement.id))).scalars().first()
        )  # type: ignore[arg-type]


async def _counts(sm: SessionMaker) -> tuple[int, int]:
    async with sm() as session:
        r = await session.scalar(select(func.count()).select_from(Response).where(Response.source == "link"))
        c = await session.scalar(select(func.count()).select_from(PaymentConfirmation))
    return int(r or 0), int(c or 0)


async def test_control_characters_are_cleaned_at_input_and_both_xlsx_exports_work(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    token = launched.tokens["u001"]
    typed = "申报\x08材料\x00可以\x1b再简化\r\n第二行\x7f\x85"  # NUL only inside text: see below
    answer = {**GOOD, "q_suggestion": typed.replace("\x00", "")}
    fields = await page_form(app_client, token)
    resp = await app_client.post(f"/l/{token}/answers", data={**fields, **answer}, allow_redirects=False)
    assert resp.status == 303
    d = await _first_disbursement(sessionmaker, launched, "u001")
    fields = await page_form(app_client, token, f"pay/{d}")
    resp = await app_client.post(
        f"/l/{token}/pay/{d}",
        data={
            **fields,
            "status": "confirmed",
            "received_on": "2023-02-22",
            "amount": "155,628.00",
            "voucher": "收\t-001\x0c",
            "reason": "已\x1f到账",
        },
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    async with sessionmaker() as session:
        (record,) = await list_responses(session, launched.project_id, launched.campaign_id)
        (conf,) = await list_confirmations(session, launched.project_id, launched.campaign_id)
    assert record.answers["suggestion"] == "申报材料可以再简化\n第二行"
    assert conf.confirmation.voucher == "收 -001" and conf.confirmation.reason == "已到账"

    async with transaction(sessionmaker) as session:
        _, admin = await create_token(session, name="管理员", role="admin", now=clock(), all_projects=True)
    for what in ("responses", "confirmations"):
        resp = await app_client.get(
            f"/api/projects/{CODE}/{what}/export?format=xlsx", headers={"Authorization": f"Bearer {admin}"}
        )
        assert resp.status == 200, (what, await resp.text())
        book = load_workbook(io.BytesIO(await resp.read()), read_only=True)
        cells = [
            c for row in book.worksheets[0].iter_rows(values_only=True) for c in row if isinstance(c, str)
        ]
        assert not any(has_control(c, multiline=True) for c in cells)
        assert any(c in ("申报材料可以再简化\n第二行", "收 -001") for c in cells), what


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"received_on": "2023-W01"}, "received_on", "年-月-日"),
        ({"received_on": "20230301"}, "received_on", "年-月-日"),
        ({"received_on": "٢٠٢٣-٠٣-٠١"}, "received_on", "年-月-日"),
        ({"received_on": "2023-02-30"}, "received_on", "年-月-日"),
        ({"amount": " 12 3 "}, "amount", "金额格式不正确"),
        ({"amount": "١٢٣"}, "amount", "金额格式不正确"),
        ({"amount": "１２３"}, "amount", "金额格式不正确"),
        ({"amount": "1e3"}, "amount", "金额格式不正确"),
    ],
    ids=[
        "iso-week",
        "basic-format",
        "arabic-indic-date",
        "no-such-day",
        "inner-spaces",
        "arabic-indic-amount",
        "fullwidth-amount",
        "exponent",
    ],  # fmt: skip
)
async def test_dates_and_amounts_parse_only_as_the_hint_says(
    app_client: TestClient,
    sessionmaker: SessionMaker,
    launched: Launched,
    values: dict[str, str],
    field: str,
    message: str,
) -> None:
    token = launched.tokens["u004"]
    d = await _first_disbursement(sessionmaker, launched, "u004")
    fields = await page_form(app_client, token, f"pay/{d}")
    form = {"status": "confirmed", "received_on": "2023-02-22", "amount": "100", **values}
    resp = await app_client.post(f"/l/{token}/pay/{d}", data={**fields, **form}, allow_redirects=False)
    body = await resp.text()
    assert resp.status == 422
    fid = f"e-p{d}-{field}"
    assert message in body.split(f'id="{fid}">', 1)[1][:80]
    assert await _counts(sessionmaker) == (0, 0)


def test_a_number_answer_in_other_digits_or_with_inner_spaces_is_refused() -> None:
    # The example questionnaire has no number question: the one rule, checked directly.
    qdef = QuestionnaireDef.model_validate(
        {
            "title": "问卷",
            "satisfaction_question": "s",
            "questions": [
                {"key": "s", "text": "满意吗", "kind": "scale", "required": False},
                {"key": "n", "text": "多少", "kind": "number", "required": False},
            ],
        }
    )
    for bad in ("١٢", "１２", " 12 3 ", "1e3", "12.", "٣.5"):
        assert "n" in validate_answers(qdef, {"n": bad})[1], bad
    assert validate_answers(qdef, {"n": " 12.5 "}) == ({"n": "12.5"}, {})


# ----------------------------------------------------------------------------------- fuzz

_text = st.text(st.characters(codec="utf-8"), max_size=40)


@given(st.dictionaries(st.sampled_from(["status", "received_on", "amount", "voucher", "dispute_kind",
                                        "reason", "csrf", "submission_id", "q_x"]), _text))  # fmt: skip
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_any_urlencoded_form_parses_to_its_fields_or_a_located_400(fields: dict[str, str]) -> None:
    body = urlencode(fields).encode()
    try:
        form = parse_body(body)
    except ApiError as exc:
        assert exc.status == 400 and any("\x00" in k + v for k, v in fields.items())
        return
    assert dict(form) == fields
    parsed = parse_confirmation(form)  # never raises: every problem is a field message
    assert set(parsed.errors) <= {"received_on", "amount"}
    if parsed.amount_fen is not None:
        assert re.fullmatch(r"[0-9,.元，]+", fields["amount"].strip())
    if parsed.received_on is not None:
        assert parsed.received_on.isoformat() == fields["received_on"].strip()


@given(st.binary(max_size=300))
@settings(max_examples=400, deadline=None)
def test_arbitrary_bytes_are_fields_or_a_400_never_a_crash(body: bytes) -> None:
    try:
        form = parse_body(body)
    except ApiError as exc:
        assert exc.status == 400
    else:
        assert len(form) <= MAX_FORM_FIELDS and all("\x00" not in k + v for k, v in form.items())


@given(
    st.one_of(
        st.binary(max_size=200), st.text(st.sampled_from("ab=&%+2F0x\x00é"), max_size=60).map(str.encode)
    )
)
@settings(max_examples=600, deadline=None)
def test_the_form_parser_gives_what_parse_qsl_gives(body: bytes) -> None:
    # parse_body is a hand-rolled fast path of urllib's parser: same fields, same refusals.
    try:
        expected = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS
        )
        refused = any("\x00" in k + v for k, v in expected)
    except (UnicodeDecodeError, ValueError):
        refused = True
    try:
        got = list(parse_body(body).items())
    except ApiError as exc:
        assert refused and exc.status == 400
    else:
        assert not refused and got == expected


def test_too_many_fields_and_bad_escapes_are_a_400() -> None:
    with pytest.raises(ApiError):
        parse_body(b"&".join(b"a=1" for _ in range(MAX_FORM_FIELDS + 1)))
    with pytest.raises(ApiError):
        parse_body(b"a=" + quote("x").encode() + b"%FF")


@given(st.text(max_size=60), st.booleans())
@settings(max_examples=500, deadline=None)
def test_cleaned_text_has_no_control_character_and_cleaning_twice_changes_nothing(
    text: str, multiline: bool
) -> None:
    cleaned = clean_text(text, multiline=multiline)
    assert not has_control(cleaned, multiline=multiline)
    assert clean_text(cleaned, multiline=multiline) == cleaned
    kept = [c for c in text if not has_control(c, multiline=True) and c != "\r"]
    if multiline:
        assert [c for c in cleaned if c != "\n"] == [c for c in kept if c != "\n"]
    if text.isprintable():
        assert cleaned == text


@given(st.text(st.characters(codec="utf-8"), max_size=20))
@settings(max_examples=300, deadline=None)
def test_dates_and_amounts_accept_only_ascii_iso_dates_and_ascii_yuan(text: str) -> None:
    day, err = parse_date(text)
    if day is not None:
        assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text.strip()) and err is None
    fen, err = parse_yuan(text)
    if fen is not None:
        assert re.fullmatch(r"[0-9][0-9,.]*元?", text.strip().replace("，", ",")) and fen >= 0
