"""The summary job: what it enqueues, how each platform renders it (golden files), long-table
splitting, and the change section after an answer moves the score.

Goldens live in tests/scheduler/golden/summary_{kind}.json (each adapter's ``render`` parts).
Regenerate after an intended change with ``JIXIAO_REGEN_GOLDEN=1 pytest tests/scheduler/test_summary.py``
and review the diff. The test is strict both ways: a missing golden fails (it is never created
silently), and a regeneration run writes every file and then FAILS, so it can never be green by itself;
run once more without the variable to see it pass.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.channels.registry import adapter_for
from bot.report import verify_report
from scheduler.jobs import summarise
from scheduler.recompute import recompute
from scheduler.summary import Names, SummaryData, build_summary, message_to_payload, payload_to_message
from store.db import SessionMaker, transaction
from store.schedules import claim_run, finish_run
from tests.conftest import Clock
from tests.scheduler.conftest import CODE, TEST_SECRET, answer, make_campaign, outbox, unit_ids

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("JIXIAO_REGEN_GOLDEN") == "1"
KINDS = ("wecom", "dingtalk", "feishu", "telegram", "slack", "email", "webhook", "console")
ENDPOINT = {"kind": "wecom", "address": "coordinators-1", "name": "协调群", "config": {}}
BASE = "https://jx.example.cn"


async def run_summary(sm: SessionMaker, clock: Clock, schedule_id: int, **params: Any) -> dict[str, Any]:
    """Run one summary fire the way the service does: claim, run, record the result."""
    fire = clock()
    async with transaction(sm) as session:
        run_id = await claim_run(session, schedule_id, fire, now=clock())
    result = await summarise(
        sm, CODE, schedule_id=schedule_id, fire_time=fire, endpoints=[ENDPOINT], now=clock(),
        report_url_base=BASE, secret=TEST_SECRET, params=params,
    )  # fmt: skip
    async with transaction(sm) as session:
        await finish_run(session, run_id, status="ok", now=clock(), result=result)  # type: ignore[arg-type]
    return result


async def make_schedule(sm: SessionMaker, clock: Clock) -> int:
    from store.schedules import create_schedule

    async with transaction(sm) as session:
        row = await create_schedule(
            session,
            kind="summarise",
            project=CODE,
            cron="0 9 * * *",
            params={"endpoints": [ENDPOINT]},
            by="t",
            now=clock(),
        )
    return row.id  # type: ignore[return-value]


def parts_json(kind: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    parts = adapter_for(kind).render(
        payload_to_message(payload), dedupe_key="summary:1:2026-03-02T01:00:00Z:e1"
    )
    return [
        {
            "index": p.index,
            "total": p.total,
            "size": p.size,
            "unit": p.unit,
            "dedupe_key": p.dedupe_key,
            "payload": p.payload,
        }
        for p in parts
    ]


async def test_summary_of_the_example_project_matches_each_platforms_golden_rendering(
    sessionmaker, project, clock
) -> None:
    await make_campaign(sessionmaker, project, clock)
    sid = await make_schedule(sessionmaker, clock)
    await recompute(sessionmaker, CODE, now=clock())
    result = await run_summary(sessionmaker, clock, sid)
    assert result["enqueued"] == 1
    (row,) = await outbox(sessionmaker, kind="summary")
    assert row.dedupe_key == f"summary:{sid}:2026-03-02T01:00:00Z:e{row.endpoint_id}"
    payload = dict(row.payload)
    payload.pop("snapshot_id")
    check_goldens({kind: parts_json(kind, payload) for kind in KINDS})


def check_goldens(
    renderings: dict[str, list[dict[str, Any]]], *, regen: bool = REGEN, golden: Path = GOLDEN
) -> None:
    """Compare each platform's rendering with its golden file; with `regen`, write them all and fail."""
    if regen:
        for kind, got in renderings.items():
            path = golden / f"summary_{kind}.json"
            path.write_text(json.dumps(got, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        pytest.fail(
            f"JIXIAO_REGEN_GOLDEN=1: wrote {len(renderings)} golden files; review `git diff "
            "tests/scheduler/golden` and run again without the variable"
        )
    missing = [k for k in renderings if not (golden / f"summary_{k}.json").exists()]
    assert missing == [], f"golden files missing for {missing} (create them with JIXIAO_REGEN_GOLDEN=1)"
    mismatched = [
        kind
        for kind, got in renderings.items()
        if json.loads((golden / f"summary_{kind}.json").read_text(encoding="utf-8")) != got
    ]
    assert mismatched == [], (
        f"renderings differ from goldens (regenerate with JIXIAO_REGEN_GOLDEN=1): {mismatched}"
    )


RENDERED = {"wecom": [{"index": 1, "payload": {"msgtype": "markdown"}}]}


def test_a_missing_golden_file_fails_instead_of_being_written(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"golden files missing for \['wecom'\]"):
        check_goldens(RENDERED, regen=False, golden=tmp_path)
    assert list(tmp_path.iterdir()) == [], "nothing was written"


def test_regenerating_goldens_writes_them_and_then_fails(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="wrote 1 golden files"):
        check_goldens(RENDERED, regen=True, golden=tmp_path)
    assert json.loads((tmp_path / "summary_wecom.json").read_text(encoding="utf-8")) == RENDERED["wecom"]
    check_goldens(RENDERED, regen=False, golden=tmp_path)  # the next plain run passes


def test_a_golden_that_differs_names_the_platform(tmp_path: Path) -> None:
    (tmp_path / "summary_wecom.json").write_text("[]", encoding="utf-8")
    with pytest.raises(AssertionError, match=r"differ from goldens .*\['wecom'\]"):
        check_goldens(RENDERED, regen=False, golden=tmp_path)


async def test_summary_says_who_has_not_answered_and_what_is_unconfirmed(
    sessionmaker, project, clock
) -> None:
    await make_campaign(sessionmaker, project, clock)
    sid = await make_schedule(sessionmaker, clock)
    await run_summary(sessionmaker, clock, sid, first_n=3)
    (row,) = await outbox(sessionmaker, kind="summary")
    text = json.dumps(row.payload, ensure_ascii=False)
    assert "问卷回收率 13.22%（已答 16 / 已邀请 121）" in text
    assert "未答单位 105 家：" in text and "等（另 102 家）" in text
    assert "未确认拨付 121 笔，22,448,400.00 元" in text
    assert "首次汇总" in text
    link = row.payload["link"]["url"]
    assert link.startswith(f"{BASE}/r/")
    assert verify_report(TEST_SECRET, link.rsplit("/", 1)[1], now=clock()) == CODE


async def test_summary_shows_the_change_after_an_answer_lowers_satisfaction(
    sessionmaker, project, clock
) -> None:
    campaign = await make_campaign(sessionmaker, project, clock)
    sid = await make_schedule(sessionmaker, clock)
    await recompute(sessionmaker, CODE, now=clock())
    await run_summary(sessionmaker, clock, sid)
    clock.advance(days=1)
    for unit in await unit_ids(sessionmaker, project, 3):
        await answer(sessionmaker, campaign.id, unit, now=clock(), overall="非常不满意")  # type: ignore[arg-type]
    await recompute(sessionmaker, CODE, now=clock())
    await run_summary(sessionmaker, clock, sid)
    first, second = await outbox(sessionmaker, kind="summary")
    text = json.dumps(second.payload, ensure_ascii=False)
    assert "较上次汇总的变化" in text
    # 16 satisfied of 19 valid = 84.21% against a 90% target: 5 × 0.8421 / 0.9 = 4.68.
    assert "项目承担单位满意度 5.00 → 4.68 (−0.32)" in text
    assert "总分 100.00 → 99.68 (−0.32)" in text
    assert "问卷回收率 15.7%（已答 19 / 已邀请 121）" in text
    assert second.dedupe_key != first.dedupe_key


async def test_summary_fire_posts_once_even_if_run_twice(sessionmaker, project, clock) -> None:
    sid = await make_schedule(sessionmaker, clock)
    for _ in range(2):
        await summarise(
            sessionmaker, CODE, schedule_id=sid, fire_time=clock(), endpoints=[ENDPOINT, ENDPOINT], now=clock(),
            report_url_base=BASE, secret=TEST_SECRET,
        )  # fmt: skip
    assert len(await outbox(sessionmaker, kind="summary")) == 1


def _long_data(n: int) -> SummaryData:
    indicators = [
        {"key": f"k{i}", "level1": f"一级{i // 50}", "level2": f"二级{i // 10}", "name": f"三级指标第{i}项（较长的名称用于测试分段）",
         "weight": "1", "score": "0.50", "rate": "0.5000"}
        for i in range(n)
    ]  # fmt: skip
    return SummaryData(
        project_code="demo", project_name="示例项目", when_local="2026-03-02 09:00",
        snapshot={"total": "50.00", "grade": "差", "indicators": indicators, "warnings": []}, previous=None,
        invited=10, answered=5, not_answered=Names(5, 0, ("甲", "乙")), unconfirmed=Names(0), disputed=Names(0),
        budget_fen=100, disbursed_fen=100, period_start=date(2026, 1, 1), period_end=date(2026, 12, 31),
        today=date(2026, 3, 2), report_url="https://jx.example.cn/r/x",
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["wecom", "telegram", "slack", "dingtalk", "feishu"])
def test_a_long_table_is_split_at_row_boundaries_with_the_header_in_every_part(kind: str) -> None:
    message = build_summary(_long_data(300))
    parts = adapter_for(kind).render(payload_to_message(message_to_payload(message)))
    adapter = adapter_for(kind)
    assert len(parts) > 1
    blob = [json.dumps(p.payload, ensure_ascii=False) for p in parts]
    for i in range(300):
        name = f"三级指标第{i}项（较长的名称用于测试分段）"
        holding = [b for b in blob if re.search(re.escape(name) + r"[^\d]", b)]
        assert len(holding) == 1, f"row {i} appears in {len(holding)} parts"
    for p in parts:
        assert p.size <= adapter.max_part_size
    if kind in ("wecom", "telegram", "slack"):  # real tables: the header row repeats in each part
        assert all("得分率" in b for b in blob if "三级指标第" in b)


def test_deviation_warning_when_execution_lags_time_progress() -> None:
    data = _long_data(1)
    late = SummaryData(**{**data.__dict__, "disbursed_fen": 10, "today": date(2026, 7, 1)})
    text = json.dumps(message_to_payload(build_summary(late)), ensure_ascii=False)
    assert "预算执行进度滞后：执行率 10%" in text and "时间进度 49.86%" in text
    on_track = json.dumps(message_to_payload(build_summary(data)), ensure_ascii=False)
    assert "预算执行进度滞后" not in on_track


def test_payload_round_trips_through_the_message_model() -> None:
    message = build_summary(_long_data(3))
    assert payload_to_message(message_to_payload(message)) == message
    assert Decimal("0.50") == Decimal(message_to_payload(message)["blocks"][1]["rows"][0][4])
