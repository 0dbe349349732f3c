"""Loading project definitions: versions, idempotency, units by key, money exact in fen."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select

from config.loader import load_definition
from store.db import SessionMaker, transaction
from store.facts import load_fact_inputs
from store.models import Disbursement, FundArrival, ProjectVersion, Response, ScoreOverride, Unit
from store.projects import get_definition, get_project, load_project
from tests.conftest import EXAMPLE_PROJECT, REPO

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
DEMO = REPO / "config" / "projects" / "zipingbiao-demo"


async def _count(session, model, *where) -> int:  # type: ignore[no-untyped-def]
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_loading_the_example_stores_every_row_with_exact_money(sessionmaker: SessionMaker) -> None:
    defn = load_definition(EXAMPLE_PROJECT)
    async with transaction(sessionmaker) as s:
        result = await load_project(s, defn, now=NOW, by="test")
    assert (result.version, result.created_version, result.units_added) == (1, True, 121)
    async with transaction(sessionmaker) as s:
        project = await get_project(s, "urumqi-ip-2023")
        assert await _count(s, Unit, Unit.project_id == project.id) == 121
        arrived = await s.scalar(
            select(func.sum(FundArrival.amount_fen)).where(FundArrival.project_id == project.id)
        )
        paid = await s.scalar(
            select(func.sum(Disbursement.amount_fen)).where(Disbursement.project_id == project.id)
        )
        assert arrived == paid == 2_244_840_000  # 2244.84万元 in fen
        assert project.budget_fen == 2_244_840_000
        inputs = await load_fact_inputs(s, project)
        assert inputs.satisfaction_counts == {"非常满意": 12, "比较满意": 4}
        assert inputs.invited_units == 121 and inputs.responded_units == 16
        assert [d.isoformat() for d, _ in inputs.arrivals] == [
            "2023-02-13",
            "2023-02-14",
            "2023-04-23",
            "2023-06-26",
            "2023-07-13",
        ]
        assert Decimal(inputs.disbursed_fen) / 100 == Decimal("22448400.00")


async def test_loading_the_same_definition_again_changes_nothing(sessionmaker: SessionMaker) -> None:
    defn = load_definition(EXAMPLE_PROJECT)
    async with transaction(sessionmaker) as s:
        await load_project(s, defn, now=NOW)
    async with transaction(sessionmaker) as s:
        again = await load_project(s, defn, now=NOW)
        assert (again.version, again.created_version) == (1, False)
        assert await _count(s, ProjectVersion) == 1
        assert await _count(s, Response) == 16


async def test_a_changed_definition_becomes_a_new_version_and_keeps_the_old(
    sessionmaker: SessionMaker,
) -> None:
    defn = load_definition(EXAMPLE_PROJECT)
    async with transaction(sessionmaker) as s:
        await load_project(s, defn, now=NOW)
    renamed = defn.model_copy(
        update={
            "units": [
                u.model_copy(update={"name": u.name + "（更名）"}) if i == 0 else u
                for i, u in enumerate(defn.units)
            ][:-1],
            "disbursements": [d for d in defn.disbursements if d.unit_key != defn.units[-1].key],
        }
    )
    async with transaction(sessionmaker) as s:
        result = await load_project(s, renamed, now=NOW, by="test")
    assert (result.version, result.created_version) == (2, True)
    assert (result.units_added, result.units_updated, result.units_deactivated) == (0, 1, 1)
    async with transaction(sessionmaker) as s:
        project = await get_project(s, "urumqi-ip-2023")
        assert project.current_version == 2
        assert await _count(s, ProjectVersion, ProjectVersion.project_id == project.id) == 2
        old = await get_definition(s, project, 1)
        assert len(old.units) == 121
        # Units are never deleted (responses refer to them); the dropped one is inactive.
        assert await _count(s, Unit, Unit.active.is_(False)) == 1
        # Imported responses are not imported twice.
        assert await _count(s, Response) == 16


async def test_definition_overrides_are_recorded_once_with_their_reason(sessionmaker: SessionMaker) -> None:
    defn = load_definition(DEMO)
    async with transaction(sessionmaker) as s:
        await load_project(s, defn, now=NOW)
        await load_project(s, defn, now=NOW)
    async with transaction(sessionmaker) as s:
        rows = (await s.execute(select(ScoreOverride))).scalars().all()
    assert len(rows) == 1
    assert rows[0].score == Decimal(6) and "管护" in rows[0].reason


async def test_units_and_payments_added_outside_the_definition_survive_a_reload(
    sessionmaker: SessionMaker,
) -> None:
    defn = load_definition(EXAMPLE_PROJECT)
    async with transaction(sessionmaker) as s:
        pid = (await load_project(s, defn, now=NOW)).project.id
        extra = Unit(project_id=pid, key="api-unit", name="接口新增单位", created_at=NOW, updated_at=NOW)
        s.add(extra)
        await s.flush()
        s.add(
            Disbursement(
                project_id=pid,
                unit_id=extra.id,
                key="api-pay",
                amount_fen=100,
                paid_on=defn.disbursements[0].date,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    changed = defn.model_copy(update={"project": defn.project.model_copy(update={"name": "改名后的项目"})})
    async with transaction(sessionmaker) as s:
        result = await load_project(s, changed, now=NOW)
        assert (result.version, result.units_deactivated) == (2, 0)
        assert await _count(s, Unit, Unit.key == "api-unit", Unit.active.is_(True)) == 1
        assert await _count(s, Disbursement, Disbursement.key == "api-pay") == 1
