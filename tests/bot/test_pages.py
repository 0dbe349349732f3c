"""The unit page: rendering, answers, payment confirmations, validation, idempotency, concurrency."""

from __future__ import annotations

import asyncio
import html as htmllib
import secrets
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from store.answers import discrepancies, list_confirmations, list_responses, submit_response
from store.db import SessionMaker, transaction
from store.errors import Conflict
from store.facts import load_fact_inputs
from store.models import (
    Disbursement,
    Link,
    PaymentConfirmation,
    Project,
    Questionnaire,
    Response,
    Unit,
)
from tests.bot.conftest import Launched, hidden_fields, page_form
from tests.conftest import Clock

GOOD = {"q_guide": "非常满意", "q_review": "比较满意", "q_funds": "一般", "q_overall": "非常满意"}


async def _disbursements(sm: SessionMaker, launched: Launched, unit_key: str) -> list[Disbursement]:
    async with sm() as session:
        stmt = (
            select(Disbursement)
            .where(Disbursement.unit_id == launched.unit_ids[unit_key])
            .order_by(Disbursement.paid_on, Disbursement.id)
        )
        return list((await session.execute(stmt)).scalars())


async def _counts(sm: SessionMaker) -> tuple[int, int]:
    async with sm() as session:
        r = await session.scalar(select(func.count()).select_from(Response).where(Response.source == "link"))
        c = await session.scalar(select(func.count()).select_from(PaymentConfirmation))
    return int(r or 0), int(c or 0)


async def _post_answers(
    client: TestClient, token: str, answers: dict[str, Any], fields: dict[str, str] | None = None
) -> Any:
    fields = fields or await page_form(client, token)
    return await client.post(f"/l/{token}/answers", data={**fields, **answers}, allow_redirects=False)


async def _post_payment(client: TestClient, token: str, disbursement_id: int, values: dict[str, str]) -> Any:
    fields = await page_form(client, token, f"pay/{disbursement_id}")
    return await client.post(
        f"/l/{token}/pay/{disbursement_id}", data={**fields, **values}, allow_redirects=False
    )


# ------------------------------------------------------------------------------ rendering


async def test_the_page_shows_unit_questions_and_disbursements_in_yuan_in_about_9_kb(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    resp = await app_client.get(launched.url("u001"))
    body = await resp.text()
    assert resp.status == 200
    assert (
        resp.headers["Cache-Control"] == "no-store"
        and "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    )
    assert "乌鲁木齐米东恒通商标事务所（示例）" in body
    assert "您对项目申报指南的清晰程度是否满意？" in body and "非常不满意" in body
    first = (await _disbursements(sessionmaker, launched, "u001"))[0]
    assert first.amount_fen == 15_562_800 and "155,628.00 元" in body
    assert "<script" not in body.lower()  # no JavaScript needed at all
    size = len(body.encode())
    assert int(resp.headers["Content-Length"]) == size, "the page is sent whole, not chunked"
    assert size < 12 * 1024, f"the README promises about 9 KB; the page is {size} bytes"
    # accessible structure: every radio group is a fieldset with a legend, inputs have labels
    assert body.count("<fieldset") >= 4 and body.count("<legend>") >= 4
    assert 'for="q-suggestion"' in body and 'id="q-suggestion"' in body


async def test_hostile_unit_names_and_answers_are_escaped(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    evil = '<script>alert("x")</script>'
    async with transaction(sessionmaker) as session:
        unit = await session.get(Unit, launched.unit_ids["u001"])
        assert unit is not None
        unit.name = evil
    resp = await _post_answers(app_client, launched.tokens["u001"], {**GOOD, "q_suggestion": evil})
    assert resp.status == 303
    page = await (await app_client.get(resp.headers["Location"])).text()
    assert evil not in page
    assert htmllib.escape(evil, quote=True) in page or "&lt;script&gt;" in page
    assert page.count("&lt;script&gt;") >= 2  # the name and the recorded answer


# ------------------------------------------------------------------------------ answers


async def test_answers_are_stored_and_redirect_to_the_thank_you_state(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    token = launched.tokens["u007"]
    resp = await _post_answers(app_client, token, {**GOOD, "q_suggestion": "申报材料可以再简化"})
    assert resp.status == 303 and resp.headers["Location"] == f"/l/{token}?done=answers#done"
    thanks = await (await app_client.get(resp.headers["Location"])).text()
    assert "已提交，谢谢" in thanks and "申报材料可以再简化" in thanks and "修改答案" in thanks
    async with sessionmaker() as session:
        records = await list_responses(session, launched.project_id, launched.campaign_id)
        link = await session.get(Link, launched.links["u007"].id)
    assert len(records) == 1
    record = records[0]
    assert record.unit_key == "u007" and record.response.satisfaction == "非常满意"
    assert record.answers == {
        "guide": "非常满意",
        "review": "比较满意",
        "funds": "一般",
        "overall": "非常满意",
        "suggestion": "申报材料可以再简化",
    }
    assert link is not None and link.answered_at == clock()


async def test_a_double_submit_of_one_form_stores_one_response(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    token = launched.tokens["u008"]
    fields = await page_form(app_client, token)
    first, second = await asyncio.gather(
        _post_answers(app_client, token, GOOD, fields), _post_answers(app_client, token, GOOD, fields)
    )
    third = await _post_answers(app_client, token, GOOD, fields)  # a retry of the same form
    assert [r.status for r in (first, second, third)] == [303, 303, 303]
    assert await _counts(sessionmaker) == (1, 0)


async def test_changing_answers_makes_a_new_version_and_keeps_the_old_one(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    token = launched.tokens["u009"]
    assert (await _post_answers(app_client, token, GOOD)).status == 303
    page = await (await app_client.get(f"/l/{token}")).text()
    assert 'value="比较满意" checked' in page  # current answers pre-filled
    assert (await _post_answers(app_client, token, {**GOOD, "q_overall": "不太满意"})).status == 303
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(Response.version, Response.is_current, Response.satisfaction)
                .where(Response.unit_id == launched.unit_ids["u009"])
                .order_by(Response.version)
            )
        ).all()
        inputs = await load_fact_inputs(session, await session.get(Project, launched.project_id))  # type: ignore[arg-type]
    assert [tuple(r) for r in rows] == [(1, False, "非常满意"), (2, True, "不太满意")]
    assert inputs.satisfaction_counts.get("不太满意") == 1


REQUIRED_MISSING = {k: v for k, v in GOOD.items() if k != "q_overall"}


@pytest.mark.parametrize(
    ("answers", "field", "message"),
    [
        (REQUIRED_MISSING, "overall", "此题必答"),
        ({**GOOD, "q_overall": "特别满意"}, "overall", "请从给出的选项中选择"),
        ({**GOOD, "q_suggestion": "长" * 501}, "suggestion", "最多 500 个字"),
    ],
    ids=["missing required", "unknown option", "text too long"],
)
async def test_invalid_answers_are_refused_next_to_the_field_and_nothing_is_stored(
    app_client: TestClient,
    sessionmaker: SessionMaker,
    launched: Launched,
    answers: dict[str, str],
    field: str,
    message: str,
) -> None:
    resp = await _post_answers(app_client, launched.tokens["u010"], answers)
    body = await resp.text()
    assert resp.status == 422
    assert f'<p class="err" id="e-q-{field}">{message}' in body
    assert f'aria-describedby="e-q-{field}"' in body
    assert 'value="非常满意" checked' in body  # the user's other answers are kept
    assert await _counts(sessionmaker) == (0, 0)


@pytest.fixture
async def rich_questionnaire(sessionmaker: SessionMaker, launched: Launched) -> None:
    """Add single, multi and number questions to the campaign's questionnaire."""
    async with transaction(sessionmaker) as session:
        q = (
            await session.execute(
                select(Questionnaire).where(Questionnaire.project_id == launched.project_id)
            )
        ).scalar_one()
        definition = dict(q.definition)
        definition["questions"] = [
            *definition["questions"],
            {"key": "staff", "text": "项目投入人数", "kind": "number", "min": "0", "max": "1000"},
            {
                "key": "via",
                "text": "通过哪些渠道了解项目？",
                "kind": "multi",
                "options": ["官网", "微信", "会议"],
                "required": False,
            },
            {"key": "size", "text": "单位规模", "kind": "single", "options": ["小", "中", "大"]},
        ]
        q.definition = definition  # reassigned, so the JSON change is persisted


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"q_staff": "abc", "q_size": "小"}, "staff", "请填写数字"),
        ({"q_staff": "1e3", "q_size": "小"}, "staff", "请填写数字"),
        ({"q_staff": "1001", "q_size": "小"}, "staff", "不能大于 1000"),
        ({"q_staff": "-1", "q_size": "小"}, "staff", "不能小于 0"),
        ({"q_staff": "5", "q_size": "巨"}, "size", "请从给出的选项中选择"),
        ({"q_staff": "5", "q_size": "小", "q_via": ["官网", "电报"]}, "via", "请从给出的选项中选择"),
    ],
    ids=["not a number", "exponent", "above max", "below min", "unknown single", "unknown multi"],
)
async def test_number_single_and_multi_questions_are_validated(
    app_client: TestClient,
    sessionmaker: SessionMaker,
    launched: Launched,
    rich_questionnaire: None,
    extra: dict[str, Any],
    field: str,
    message: str,
) -> None:
    token = launched.tokens["u011"]
    fields = await page_form(app_client, token)
    data = [*({**fields, **GOOD}.items())]
    for k, v in extra.items():
        data += [(k, x) for x in v] if isinstance(v, list) else [(k, v)]
    resp = await app_client.post(f"/l/{token}/answers", data=data, allow_redirects=False)
    assert resp.status == 422
    assert f'<p class="err" id="e-q-{field}">{message}' in await resp.text()
    assert await _counts(sessionmaker) == (0, 0)


async def test_valid_number_and_multi_answers_are_stored_exactly(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched, rich_questionnaire: None
) -> None:
    token = launched.tokens["u011"]
    fields = await page_form(app_client, token)
    data = [
        *({**fields, **GOOD}.items()),
        ("q_staff", "12.50"),
        ("q_size", "中"),
        ("q_via", "会议"),
        ("q_via", "官网"),
    ]
    assert (await app_client.post(f"/l/{token}/answers", data=data, allow_redirects=False)).status == 303
    async with sessionmaker() as session:
        (record,) = await list_responses(session, launched.project_id, launched.campaign_id)
    assert record.answers["staff"] == "12.50" and record.answers["via"] == ["官网", "会议"]


async def test_the_store_refuses_float_numbers_and_closed_links(
    sessionmaker: SessionMaker, launched: Launched, rich_questionnaire: None, clock: Clock
) -> None:
    from store.answers import AnswerErrors

    link = launched.links["u012"]
    async with transaction(sessionmaker) as session:
        with pytest.raises(AnswerErrors) as info:
            await submit_response(
                session,
                link,
                answers={**{k[2:]: v for k, v in GOOD.items()}, "staff": 1.5, "size": "小"},
                submission_key="k1",
                now=clock(),
            )
    assert set(info.value.fields) == {"staff"}
    link.revoked_at = clock()
    async with transaction(sessionmaker) as session:
        with pytest.raises(Conflict):
            await submit_response(session, link, answers={}, submission_key="k2", now=clock())


# ------------------------------------------------------------------------------ payments


async def test_confirming_a_payment_records_it_and_shows_the_thank_you_state(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    token = launched.tokens["u001"]
    disbursements = await _disbursements(sessionmaker, launched, "u001")
    d = disbursements[0]
    resp = await _post_payment(
        app_client,
        token,
        d.id,
        {  # type: ignore[arg-type]
            "status": "confirmed",
            "received_on": "2023-02-22",
            "amount": "155,628.00",
            "voucher": "收-001",
        },
    )
    assert resp.status == 303
    page = await (await app_client.get(resp.headers["Location"])).text()
    assert "已提交，谢谢" in page and "155,628.00 元" in page and "2023-02-22" in page
    async with sessionmaker() as session:
        (record,) = await list_confirmations(session, launched.project_id, launched.campaign_id)
        link = await session.get(Link, launched.links["u001"].id)
    assert record.confirmation.amount_fen == d.amount_fen and record.kind == "ok"
    assert link is not None
    assert (link.confirmed_at is not None) == (len(disbursements) == 1)  # all of the unit's answered


async def test_a_different_amount_and_a_dispute_count_as_discrepancies(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    (d1,) = await _disbursements(sessionmaker, launched, "u002") or [None]
    assert d1 is not None
    resp = await _post_payment(
        app_client,
        launched.tokens["u002"],
        d1.id,
        {  # type: ignore[arg-type]
            "status": "confirmed",
            "received_on": "2023-02-21",
            "amount": "1000.5",
        },
    )
    assert resp.status == 303
    (d3,) = await _disbursements(sessionmaker, launched, "u003")
    resp = await _post_payment(
        app_client,
        launched.tokens["u003"],
        d3.id,
        {  # type: ignore[arg-type]
            "status": "disputed",
            "dispute_kind": "not_received",
            "reason": "尚未到账",
        },
    )
    assert resp.status == 303
    async with sessionmaker() as session:
        found = await discrepancies(session, launched.project_id)
        inputs = await load_fact_inputs(session, await session.get(Project, launched.project_id))  # type: ignore[arg-type]
    assert [(r.unit_key, r.kind) for r in found] == [("u002", "amount_differs"), ("u003", "disputed")]
    assert found[0].confirmation.amount_fen == 100_050
    assert found[0].difference_fen == 100_050 - d1.amount_fen
    assert inputs.discrepancy_count == 1 and inputs.disputed_count == 1


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"status": "confirmed", "received_on": "2023-02-22", "amount": "-5"}, "amount", "金额不能为负数"),
        ({"status": "confirmed", "received_on": "2023-02-22", "amount": "1.005"}, "amount", "最多两位小数"),
        ({"status": "confirmed", "received_on": "2023-02-22", "amount": "abc"}, "amount", "金额格式不正确"),
        ({"status": "confirmed", "received_on": "2023-02-22", "amount": "NaN"}, "amount", "金额格式不正确"),
        (
            {"status": "confirmed", "received_on": "2023-02-22", "amount": "99999999999"},
            "amount",
            "金额远超拨付金额",
        ),
        ({"status": "confirmed", "received_on": "2026-03-03", "amount": "1"}, "received_on", "不能晚于今天"),
        ({"status": "confirmed", "received_on": "22/02/2023", "amount": "1"}, "received_on", "日期格式"),
        ({"status": "confirmed", "amount": "1"}, "received_on", "请填写到账日期"),
        ({"status": "", "amount": "1"}, "status", "请选择"),
        ({"status": "disputed"}, "dispute_kind", "请选择异议类型"),
        (
            {"status": "disputed", "dispute_kind": "amount_differs", "reason": "多" * 501},
            "reason",
            "最多 500 个字",
        ),
    ],
    ids=[
        "negative",
        "three decimals",
        "not a number",
        "nan",
        "absurd",
        "future date",
        "bad date",
        "missing date",
        "no choice",
        "dispute without kind",
        "reason too long",
    ],
)
async def test_invalid_confirmations_are_refused_next_to_the_field_and_nothing_is_stored(
    app_client: TestClient,
    sessionmaker: SessionMaker,
    launched: Launched,
    values: dict[str, str],
    field: str,
    message: str,
) -> None:
    (d,) = await _disbursements(sessionmaker, launched, "u004")
    resp = await _post_payment(app_client, launched.tokens["u004"], d.id, values)  # type: ignore[arg-type]
    body = await resp.text()
    assert resp.status == 422
    fid = f"e-p{d.id}-{field}"
    assert f'<p class="err" id="{fid}">' in body and message in body.split(f'id="{fid}">', 1)[1][:80]
    assert f'aria-describedby="{fid}"' in body
    if values.get("amount"):
        assert f'value="{htmllib.escape(values["amount"])}"' in body  # the input is kept
    assert await _counts(sessionmaker) == (0, 0)


async def test_the_future_date_check_uses_the_project_timezone(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched, clock: Clock
) -> None:
    # 2026-03-02 17:00 UTC is 01:00 on 2026-03-03 in Shanghai: the dates differ, so a check done in
    # UTC would call Shanghai's "today" a future date.
    clock.now = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    (d,) = await _disbursements(sessionmaker, launched, "u004")
    token = launched.tokens["u004"]
    page = await (await app_client.get(launched.url("u004"))).text()
    assert 'max="2026-03-03"' in page, "the date picker stops at Shanghai's today"
    tomorrow = await _post_payment(
        app_client, token, d.id, {"status": "confirmed", "received_on": "2026-03-04", "amount": "1"}
    )
    assert tomorrow.status == 422 and "不能晚于今天" in await tomorrow.text()
    assert await _counts(sessionmaker) == (0, 0)
    resp = await _post_payment(
        app_client, token, d.id, {"status": "confirmed", "received_on": "2026-03-03", "amount": "1"}
    )
    assert resp.status == 303
    async with sessionmaker() as session:
        (record,) = await list_confirmations(session, launched.project_id, launched.campaign_id)
    assert record.confirmation.received_on == date(2026, 3, 3)


async def test_a_disbursement_of_another_unit_cannot_be_confirmed(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    (other,) = await _disbursements(sessionmaker, launched, "u005")
    token = launched.tokens["u004"]
    (mine,) = await _disbursements(sessionmaker, launched, "u004")
    fields = await page_form(app_client, token, f"pay/{mine.id}")
    resp = await app_client.post(
        f"/l/{token}/pay/{other.id}",
        data={**fields, "status": "confirmed", "received_on": "2023-02-22", "amount": "1"},
    )
    assert 400 <= resp.status < 500
    assert await _counts(sessionmaker) == (0, 0)


# ------------------------------------------------------------------------------ malformed / CSRF


async def test_malformed_oversized_and_forged_posts_are_refused_and_store_nothing(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    token = launched.tokens["u013"]
    url = f"/l/{token}/answers"
    fields = await page_form(app_client, token)
    good = {**fields, **GOOD}
    (pay,) = await _disbursements(sessionmaker, launched, "u013")
    cases: list[tuple[str, int, dict[str, Any]]] = [
        ("json body", 400, {"json": good}),
        ("repeated single field", 400, {"data": [*good.items(), ("q_overall", "一般")]}),
        ("no submission id", 400, {"data": {k: v for k, v in good.items() if k != "submission_id"}}),
        ("bad submission id", 400, {"data": {**good, "submission_id": "x' OR 1=1"}}),
        (
            "invalid utf-8",
            400,
            {"data": b"csrf=%FF%FE", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        ),
        ("oversized", 413, {"data": {**good, "q_suggestion": "x" * 70_000}}),
        ("no csrf", 403, {"data": {k: v for k, v in good.items() if k != "csrf"}}),
        ("bad csrf", 403, {"data": {**good, "csrf": "0" * 32}}),
        (
            "csrf of another form",
            403,
            {
                "data": {
                    **good,
                    "csrf": hidden_fields(
                        await (await app_client.get(f"/l/{token}")).text(), f"/l/{token}/pay/{pay.id}"
                    )["csrf"],
                }
            },
        ),
        ("foreign origin", 403, {"data": good, "headers": {"Origin": "https://evil.example"}}),
        ("foreign referer", 403, {"data": good, "headers": {"Referer": "https://evil.example/x"}}),
    ]
    for name, status, kwargs in cases:
        resp = await app_client.post(url, allow_redirects=False, **kwargs)
        assert resp.status == status, name
        assert "text/html" in resp.headers["Content-Type"], name
    assert await _counts(sessionmaker) == (0, 0)
    # The same form with "Origin: null" (no-referrer pages) is accepted.
    ok = await app_client.post(url, data=good, headers={"Origin": "null"}, allow_redirects=False)
    assert ok.status == 303


# ------------------------------------------------------------------------------ concurrency


async def test_fifty_concurrent_submissions_leave_exactly_one_current_response(
    app_client: TestClient, sessionmaker: SessionMaker, launched: Launched
) -> None:
    token = launched.tokens["u020"]
    fields = await page_form(app_client, token)
    levels = ["非常满意", "比较满意", "一般", "不太满意", "非常不满意"]

    async def submit(i: int) -> int:
        data = {**fields, **GOOD, "q_overall": levels[i % 5], "submission_id": secrets.token_hex(16)}
        resp = await app_client.post(f"/l/{token}/answers", data=data, allow_redirects=False)
        return resp.status

    statuses = await asyncio.gather(*(submit(i) for i in range(50)))
    assert statuses == [303] * 50
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(Response.version, Response.is_current).where(
                    Response.unit_id == launched.unit_ids["u020"]
                )
            )
        ).all()
    assert len(rows) == 50
    assert sorted(v for v, _ in rows) == list(range(1, 51))
    current = [v for v, c in rows if c]
    assert current == [50]
