"""Recompute keeps a snapshot per change, applies overrides, and never loses history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from config.loader import load_definition
from scheduler.recompute import recompute
from store.db import SessionMaker, transaction
from store.models import PaymentConfirmation, Response
from store.projects import get_project, load_project
from store.scores import active_overrides, list_snapshots, override_history, set_override
from tests.conftest import EXAMPLE_PROJECT

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
SAT = "satisfaction.units"


async def _load(sm: SessionMaker) -> int:
    async with transaction(sm) as s:
        result = await load_project(s, load_definition(EXAMPLE_PROJECT), now=NOW)
    assert result.project.id is not None
    return result.project.id


async def test_recompute_saves_a_snapshot_only_when_something_changed(sessionmaker: SessionMaker) -> None:
    await _load(sessionmaker)
    first = await recompute(sessionmaker, "urumqi-ip-2023", now=NOW)
    second = await recompute(sessionmaker, "urumqi-ip-2023", now=NOW + timedelta(hours=1))
    assert first.changed and not second.changed
    assert second.snapshot.id == first.snapshot.id
    assert first.snapshot.total == Decimal("100.00") and first.snapshot.grade == "优"
    doc = first.snapshot.table
    assert doc["total"] == "100.00" and len(doc["indicators"]) == 23
    assert doc["facts"]["disbursed"] == "22448400.00"


async def test_an_override_changes_the_score_and_is_kept_in_history(sessionmaker: SessionMaker) -> None:
    pid = await _load(sessionmaker)
    await recompute(sessionmaker, "urumqi-ip-2023", now=NOW)
    async with transaction(sessionmaker) as s:
        await set_override(
            s, pid, "decision.basis", score=Decimal("3"), reason="依据文件不全", by="评价组", now=NOW
        )
    changed = await recompute(sessionmaker, "urumqi-ip-2023", now=NOW + timedelta(minutes=5))
    assert changed.changed and changed.snapshot.total == Decimal("99.00")
    row = next(r for r in changed.snapshot.table["indicators"] if r["key"] == "decision.basis")
    assert row["overridden"] and row["score"] == "3.00" and row["computed_score"] == "4.00"
    assert "依据文件不全" in row["explanation"]
    async with transaction(sessionmaker) as s:
        await set_override(s, pid, "decision.basis", score=None, reason="撤销", by="评价组", now=NOW)
        assert await active_overrides(s, pid) == {}
        assert len(await override_history(s, pid)) == 2
    back = await recompute(sessionmaker, "urumqi-ip-2023", now=NOW + timedelta(minutes=10))
    assert back.snapshot.total == Decimal("100.00")
    async with transaction(sessionmaker) as s:
        assert [snap.total for snap in await list_snapshots(s, pid)] == [
            Decimal("100.00"),
            Decimal("99.00"),
            Decimal("100.00"),
        ]


async def test_new_unsatisfied_answers_lower_the_satisfaction_score(sessionmaker: SessionMaker) -> None:
    pid = await _load(sessionmaker)
    async with transaction(sessionmaker) as s:
        project = await get_project(s, "urumqi-ip-2023")
        from sqlalchemy import select

        from store.models import Unit

        units = (
            (await s.execute(select(Unit).where(Unit.project_id == project.id).order_by(Unit.id)))
            .scalars()
            .all()
        )
        answered = {r.unit_id for r in (await s.execute(select(Response))).scalars()}
        fresh = [u for u in units if u.id not in answered][:8]
        for i, u in enumerate(fresh):
            s.add(
                Response(
                    project_id=pid,
                    unit_id=u.id,
                    submission_key=f"k{i}",
                    satisfaction="一般",
                    submitted_at=NOW,
                )
            )
    result = await recompute(sessionmaker, "urumqi-ip-2023", now=NOW)
    row = next(r for r in result.snapshot.table["indicators"] if r["level1"] == "满意度")
    # 16 satisfied of 24 valid = 66.67% against a 90% target: 5 × 0.6667 / 0.9 = 3.70
    assert row["score"] == "3.70"
    assert result.snapshot.total == Decimal("98.70") and result.snapshot.grade == "优"


async def test_confirmations_and_disputes_are_counted_in_the_facts(sessionmaker: SessionMaker) -> None:
    pid = await _load(sessionmaker)
    from sqlalchemy import select

    from store.models import Disbursement

    async with transaction(sessionmaker) as s:
        pays = (await s.execute(select(Disbursement).order_by(Disbursement.id).limit(3))).scalars().all()
        s.add(
            PaymentConfirmation(
                project_id=pid,
                disbursement_id=pays[0].id,
                unit_id=pays[0].unit_id,
                status="confirmed",
                amount_fen=pays[0].amount_fen,
                expected_fen=pays[0].amount_fen,
                submission_key="c0",
                submitted_at=NOW,
            )
        )
        s.add(
            PaymentConfirmation(
                project_id=pid,
                disbursement_id=pays[1].id,
                unit_id=pays[1].unit_id,
                status="confirmed",
                amount_fen=pays[1].amount_fen - 100,
                expected_fen=pays[1].amount_fen,
                submission_key="c1",
                submitted_at=NOW,
            )
        )
        s.add(
            PaymentConfirmation(
                project_id=pid,
                disbursement_id=pays[2].id,
                unit_id=pays[2].unit_id,
                status="disputed",
                dispute_kind="not_received",
                submission_key="c2",
                submitted_at=NOW,
            )
        )
    result = await recompute(sessionmaker, "urumqi-ip-2023", now=NOW)
    facts = result.snapshot.table["facts"]
    assert (facts["confirmed_count"], facts["disputed_count"], facts["discrepancy_count"]) == (2, 1, 1)
    assert facts["unconfirmed_count"] == 121 - 3
    assert facts["confirmed_fen"] == pays[0].amount_fen + pays[1].amount_fen - 100
