"""``jixiao score`` on SQLite reads its inputs with the stdlib ``sqlite3`` (no SQLAlchemy) and must
give exactly the table the ORM recompute gives: same statements, same fold, same scoring.

Each case builds hand-made data (confirmations, disputes, an amount that differs, a superseded
answer, overrides and a withdrawn one, a project with no current answer) on the test database (SQLite,
and PostgreSQL when configured) and checks the ORM's facts against values counted by hand here;
the stdlib reader then scores the same data on SQLite (the same file, or for the PostgreSQL
variant a SQLite file built the same way) and must give the same document and fingerprint.
"""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from cli.main import main
from config.loader import load_definition
from scheduler.computed import compute_on_sqlite
from scheduler.recompute import compute, keep_snapshot, recompute
from store.db import SessionMaker, create_engine, make_sessionmaker, transaction
from store.lite import SqliteReader, keep_snapshot_sqlite, sqlite_snapshot_values
from store.models import Disbursement, PaymentConfirmation, Response, ScoreSnapshot, metadata
from store.projects import load_project
from store.scores import set_override
from tests.conftest import EXAMPLE_PROJECT, REPO

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
CODE = "urumqi-ip-2023"
CASES = ("as loaded", "answers", "overrides", "no current responses")


@dataclass(frozen=True)
class Expected:
    """The facts of a case, counted by hand from the rows the case inserted."""

    confirmed_count: int
    disputed_count: int
    discrepancy_count: int
    confirmed_fen: int
    responded_units: int | None  # None: as loaded (the example's own answers)
    overrides: dict[str, str]  # key -> score shown


def _answer(pid: int, pay: Disbursement, key: str, status: str, **kw: object) -> PaymentConfirmation:
    return PaymentConfirmation(
        project_id=pid,
        disbursement_id=pay.id,
        unit_id=pay.unit_id,
        status=status,
        submission_key=key,
        submitted_at=NOW,
        **kw,  # type: ignore[arg-type]
    )


async def _build(sm: SessionMaker, case: str) -> Expected:
    """Load the example and add ``case``'s rows; return what the facts must be."""
    async with transaction(sm) as s:
        pid = (await load_project(s, load_definition(EXAMPLE_PROJECT), now=NOW)).project.id
    assert pid is not None
    expected = Expected(0, 0, 0, 0, None, {})
    async with transaction(sm) as s:
        pays = (
            (
                await s.execute(
                    select(Disbursement).where(Disbursement.project_id == pid).order_by(Disbursement.id)
                )
            )
            .scalars()
            .all()[:5]
        )
        a = [p.amount_fen for p in pays]
        if case == "answers":
            s.add(_answer(pid, pays[0], "c0", "confirmed", amount_fen=a[0], expected_fen=a[0]))
            s.add(_answer(pid, pays[1], "c1", "confirmed", amount_fen=a[1] - 100, expected_fen=a[1]))
            s.add(_answer(pid, pays[2], "c2", "disputed", dispute_kind="not_received"))
            # no expected amount stored: counts as agreeing (store.payment_states)
            s.add(_answer(pid, pays[3], "c3", "confirmed", amount_fen=a[3] + 7, expected_fen=None))
            # superseded: a confirmation of another amount, then a dispute (the current answer)
            s.add(_answer(pid, pays[4], "c4", "confirmed", amount_fen=1, expected_fen=a[4], is_current=False))
            s.add(_answer(pid, pays[4], "c5", "disputed", dispute_kind="amount_differs", version=2))
            expected = Expected(3, 2, 1, a[0] + a[1] - 100 + a[3] + 7, None, {})
        elif case == "overrides":
            await set_override(
                s, pid, "decision.basis", score=Decimal(3), reason="依据不全", by="评价组", now=NOW
            )
            await set_override(
                s, pid, "decision.procedure", score=Decimal(2), reason="试", by="评价组", now=NOW
            )
            await set_override(s, pid, "decision.procedure", score=None, reason="撤销", by="评价组", now=NOW)
            expected = Expected(0, 0, 0, 0, None, {"decision.basis": "3.00"})
        elif case == "no current responses":
            # every answer superseded (nothing current): as if nobody had answered
            await s.execute(update(Response).where(Response.project_id == pid).values(is_current=False))
            expected = Expected(0, 0, 0, 0, 0, {})
    return expected


async def _sqlite_copy(tmp_path: Path, case: str, name: str = "lite.db") -> Path:
    """A SQLite file with ``case``'s data, built through the ORM like the test database."""
    path = tmp_path / name
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await _build(make_sessionmaker(engine), case)
    finally:
        await engine.dispose()
    return path


def _reader(path: Path) -> SqliteReader:
    return SqliteReader(sqlite3.connect(f"file:{path}?mode=ro", uri=True))


@pytest.mark.parametrize("case", CASES)
async def test_the_stdlib_reader_scores_exactly_as_the_orm(
    case: str, db_url: str, sessionmaker: SessionMaker, tmp_path: Path
) -> None:
    expected = await _build(sessionmaker, case)
    async with sessionmaker() as session:
        orm = await compute(session, CODE)
    facts = orm.inputs
    assert (facts.confirmed_count, facts.disputed_count, facts.discrepancy_count, facts.confirmed_fen) == (
        expected.confirmed_count,
        expected.disputed_count,
        expected.discrepancy_count,
        expected.confirmed_fen,
    )
    assert (
        facts.unconfirmed_count
        == facts.disbursement_count - expected.confirmed_count - expected.disputed_count
    )
    if expected.responded_units is not None:
        assert facts.responded_units == expected.responded_units and facts.satisfaction_counts == {}
    else:
        assert facts.responded_units > 0 and sum(facts.satisfaction_counts.values()) >= facts.responded_units
    rows = {r["key"]: r for r in orm.document["indicators"]}
    assert {k: r["score"] for k, r in rows.items() if r["overridden"]} == expected.overrides

    path = (
        Path(db_url.split("///", 1)[1]) if db_url.startswith("sqlite") else await _sqlite_copy(tmp_path, case)
    )
    reader = _reader(path)
    try:
        lite, latest = compute_on_sqlite(reader, CODE)
    finally:
        reader.close()
    assert latest is None
    assert lite.inputs == orm.inputs
    assert lite.document == orm.document
    assert lite.fingerprint == orm.fingerprint and lite.version == orm.version


async def test_the_stdlib_reader_sees_the_latest_snapshot_the_orm_keeps(
    sessionmaker: SessionMaker, tmp_path: Path
) -> None:
    path = await _sqlite_copy(tmp_path, "answers")
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    sm = make_sessionmaker(engine)
    try:
        first = await recompute(sm, CODE, now=NOW)
        async with transaction(sm) as s:  # an older snapshot written later must not count as latest
            s.add(ScoreSnapshot(project_id=first.snapshot.project_id, definition_version=1,
                                computed_at=datetime(2025, 1, 1, tzinfo=UTC), total=Decimal(1), grade="差",
                                fingerprint="old", trigger="test", table={}))  # fmt: skip
    finally:
        await engine.dispose()
    reader = _reader(path)
    try:
        lite, latest = compute_on_sqlite(reader, CODE)
    finally:
        reader.close()
    assert latest == first.snapshot.fingerprint == lite.fingerprint


async def test_the_stdlib_writer_stores_a_snapshot_exactly_as_the_orm_does(tmp_path: Path) -> None:
    """Same computed table, kept once through the ORM (file a) and once with the stdlib (file b):
    the stored rows are identical, value and storage class; a second keep adds nothing."""
    a = await _sqlite_copy(tmp_path, "answers", "a.db")
    b = await _sqlite_copy(tmp_path, "answers", "b.db")
    reader = _reader(a)
    try:
        computed, _ = compute_on_sqlite(reader, CODE)
    finally:
        reader.close()
    at = datetime(2026, 3, 1, 10, 30, 5, 123456, tzinfo=ZoneInfo("Asia/Shanghai"))
    engine = create_engine(f"sqlite+aiosqlite:///{a}")
    try:
        async with make_sessionmaker(engine)() as session:
            assert (await keep_snapshot(session, computed, now=at, trigger="cli")).changed
    finally:
        await engine.dispose()
    values = sqlite_snapshot_values(project_id=computed.project.id, definition_version=computed.version,
                                    computed_at=at, total=computed.table.total, grade=computed.table.grade,
                                    fingerprint=computed.fingerprint, trigger="cli", table=computed.document)  # fmt: skip
    assert keep_snapshot_sqlite(f"sqlite+aiosqlite:///{b}", values)
    assert not keep_snapshot_sqlite(f"sqlite+aiosqlite:///{b}", values)  # the latest has this fingerprint

    def stored(path: Path) -> list[tuple[object, ...]]:
        cols = (
            'id, project_id, definition_version, computed_at, total, grade, fingerprint, "trigger", "table"'
        )
        with sqlite3.connect(path) as conn:
            rows = conn.execute(f"SELECT {cols} FROM score_snapshot ORDER BY id").fetchall()
            kinds = conn.execute(
                f"SELECT {', '.join(f'typeof({c})' for c in cols.split(', '))} FROM score_snapshot"
            ).fetchall()
        return rows + kinds

    assert stored(b) == stored(a)
    assert stored(a)[0][3] == "2026-03-01 02:30:05.123456"  # UTC


def _score(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    db = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    code = main(["--database-url", db, "--data-dir", str(tmp_path), *args], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _snapshots(tmp_path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        return conn.execute('SELECT "trigger", fingerprint FROM score_snapshot ORDER BY id').fetchall()


def test_score_keeps_a_snapshot_only_when_the_table_changed(tmp_path: Path) -> None:
    assert _score(tmp_path, "project", "load", str(EXAMPLE_PROJECT))[0] == 0
    code, table, err = _score(tmp_path, "score", CODE)
    assert code == 0, err
    assert "得分 100.00  等级 优" in table
    first = _snapshots(tmp_path)
    assert [t for t, _ in first] == ["cli"]
    # unchanged: the same table, no new snapshot (the fast path)
    assert _score(tmp_path, "score", CODE)[1] == table
    assert _score(tmp_path, "score", CODE, "--format", "json")[0] == 0
    assert _snapshots(tmp_path) == first
    # an override changes the table: the next score keeps a new snapshot
    code, _, err = _score(tmp_path, "override", "set", CODE, "decision.basis", "3", "--reason", "依据不全")
    assert code == 0, err
    code, changed, _ = _score(tmp_path, "score", CODE)
    assert code == 0 and "得分 99.00" in changed
    after = _snapshots(tmp_path)
    assert [t for t, _ in after] == ["cli", "cli"] and after[1][1] != after[0][1]
    assert _score(tmp_path, "score", CODE)[1] == changed and len(_snapshots(tmp_path)) == 2


def test_an_unknown_project_is_the_same_error_on_the_fast_path(tmp_path: Path) -> None:
    assert _score(tmp_path, "project", "load", str(EXAMPLE_PROJECT))[0] == 0
    code, _, err = _score(tmp_path, "score", "no-such")
    assert code == 1 and "no such project: no-such" in err


def test_score_on_sqlite_imports_no_sqlalchemy_whether_or_not_it_keeps_a_snapshot(tmp_path: Path) -> None:
    """The point of the fast path: behaviour, not a timing (bench/cli.py measures the time)."""
    assert _score(tmp_path, "project", "load", str(EXAMPLE_PROJECT))[0] == 0
    db = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    probe = (
        "import sys\n"
        "from cli.main import main\n"
        f"code = main(['--database-url', {db!r}, 'score', {CODE!r}])\n"
        "print('EXIT', code, sorted(m for m in ('sqlalchemy', 'store.models', 'alembic') if m in sys.modules))\n"
    )
    for snapshots in (1, 1):  # the first run keeps the first snapshot, the second keeps none
        done = subprocess.run(
            [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == "EXIT 0 []"
        assert len(_snapshots(tmp_path)) == snapshots
