"""Reads for short-lived commands without the ORM: the stdlib ``sqlite3`` on a SQLite file.

A ``jixiao`` read command (``project list``, ``schedule list``) on SQLite spends most of its time
importing SQLAlchemy (≈ 0.35 s of CPU), its ORM and the sqlmodel table classes (≈ 0.3 s), which
is many times the query itself. This module imports neither: it opens the database read-only with
``sqlite3`` and runs the statements below, which are **the** statements of those reads — the ORM
functions (:func:`store.projects.list_projects`, :func:`store.schedules.list_schedules`) run the
same text through SQLAlchemy, so a rule cannot drift between the console, the API and the CLI.

Values come back as the ORM would give them: datetimes aware in UTC (sqlmodel stores them on
SQLite as naive UTC text), JSON documents parsed, booleans as ``bool`` (:func:`_convert`).

:func:`open_sqlite` returns None whenever the fast path does not apply — not SQLite, no file yet,
or a schema version other than the one this code ships (migrations run on the normal path) —
and the caller then uses the ORM function on a migrated engine (PostgreSQL always does).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

# ------------------------------------------------------------------------- the shared statements

#: Column names of the rows read below; the ORM functions map them onto the table classes.
PROJECT_COLUMNS = ("id", "code", "name", "year", "timezone", "current_version", "budget_fen",
                   "created_at", "updated_at")  # fmt: skip
SCHEDULE_COLUMNS = ("id", "kind", "project_id", "campaign_id", "cron", "timezone", "enabled",
                    "grace_seconds", "params", "version", "created_at", "updated_at", "deleted_at")  # fmt: skip

#: Every project, by code.
PROJECTS_SQL = f"SELECT {', '.join(PROJECT_COLUMNS)} FROM project ORDER BY code"

#: One project by its code (``:code``).
PROJECT_BY_CODE_SQL = f"SELECT {', '.join(PROJECT_COLUMNS)} FROM project WHERE code = :code"

#: A project's stored definition at one version (``:pid``, ``:version``): its content hash and the
#: validated JSON snapshot (``config.definition.ProjectDefinition``).
DEFINITION_HASH_SQL = (
    "SELECT content_hash FROM project_version WHERE project_id = :pid AND version = :version"
)
DEFINITION_SQL = "SELECT definition FROM project_version WHERE project_id = :pid AND version = :version"

#: A project's overrides, oldest first (``:pid``); :func:`active_overrides_of` keeps the one in
#: force per indicator. ``by`` is quoted: a reserved word on PostgreSQL.
OVERRIDE_COLUMNS = ("indicator_key", "score", "reason", "by", "active", "created_at")
OVERRIDES_SQL = (
    'SELECT indicator_key, score, reason, "by", active, created_at FROM score_override '
    "WHERE project_id = :pid ORDER BY id"
)

SNAPSHOT_COLUMNS = ("id", "project_id", "definition_version", "computed_at", "total", "grade",
                    "fingerprint", "trigger", "table")  # fmt: skip


def latest_snapshot_sql(columns: tuple[str, ...] = SNAPSHOT_COLUMNS) -> str:
    """A project's latest score snapshot (``:pid``): newest ``computed_at``, then highest id.
    ``table`` and ``trigger`` are quoted (reserved words)."""
    cols = ", ".join(f'"{c}"' if c in ("table", "trigger") else c for c in columns)
    return (
        f"SELECT {cols} FROM score_snapshot WHERE project_id = :pid "
        "ORDER BY computed_at DESC, id DESC LIMIT 1"
    )


#: A new score snapshot (named parameters as the columns; ``:computed_at`` UTC).
SNAPSHOT_INSERT_COLUMNS = SNAPSHOT_COLUMNS[1:]
SNAPSHOT_INSERT_SQL = (
    f"INSERT INTO score_snapshot ({', '.join(f'{chr(34)}{c}{chr(34)}' for c in SNAPSHOT_INSERT_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in SNAPSHOT_INSERT_COLUMNS)})"
)


def keeps_snapshot(latest_fingerprint: str | None, fingerprint: str, *, force: bool = False) -> bool:
    """The rule of every recompute: a table is kept as a new snapshot unless the latest snapshot
    has the same fingerprint (or ``force``)."""
    return force or latest_fingerprint != fingerprint


def schedules_sql(*, project: bool = False, enabled_only: bool = False) -> str:
    """Live (not removed) schedules with their project's code last, oldest first; ``project``
    adds ``AND project.code = :code``, ``enabled_only`` keeps enabled ones (``:enabled`` = true)."""
    where = ["schedule.deleted_at IS NULL"]
    if project:
        where.append("project.code = :code")
    if enabled_only:
        where.append("schedule.enabled = :enabled")
    return (
        f"SELECT {', '.join('schedule.' + c for c in SCHEDULE_COLUMNS)}, project.code AS code "
        "FROM schedule JOIN project ON project.id = schedule.project_id "
        f"WHERE {' AND '.join(where)} ORDER BY schedule.id"
    )


# ------------------------------------------------------------------------- rows without the ORM


@dataclass(frozen=True)
class ActiveOverride:
    """The override in force for one indicator (:func:`active_overrides_of`)."""

    score: Decimal
    reason: str
    by: str
    created_at: datetime


def active_overrides_of(rows: list[dict[str, Any]]) -> dict[str, ActiveOverride]:
    """The override in force per indicator key from :data:`OVERRIDES_SQL`'s rows (oldest first):
    the newest row, unless it withdrew (inactive, or no score). Rows as the ORM or
    :meth:`SqliteReader.rows` give them."""
    current: dict[str, ActiveOverride] = {}
    for row in rows:
        if row["active"] and row["score"] is not None:
            current[row["indicator_key"]] = ActiveOverride(
                Decimal(row["score"]), row["reason"], row["by"], row["created_at"]
            )
        else:
            current.pop(row["indicator_key"], None)
    return current


@dataclass(frozen=True)
class ProjectRow:
    """A ``project`` row read without the ORM (the attributes of ``store.models.Project``)."""

    id: int
    code: str
    name: str
    year: int
    timezone: str
    current_version: int
    budget_fen: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ScheduleRow:
    """A ``schedule`` row read without the ORM (the attributes of ``store.models.Schedule``)."""

    id: int
    kind: str
    project_id: int
    campaign_id: int | None
    cron: str
    timezone: str
    enabled: bool
    grace_seconds: int
    params: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


_DATETIMES = frozenset({"created_at", "updated_at", "deleted_at", "computed_at"})
_BOOLEANS = frozenset({"enabled", "active"})
_JSON = frozenset({"params", "definition"})


def _convert(name: str, value: Any) -> Any:
    """A SQLite value as the ORM column type returns it."""
    if value is None:
        return None
    if name in _DATETIMES:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
        return parsed.replace(tzinfo=UTC) if parsed.utcoffset() is None else parsed.astimezone(UTC)
    if name in _BOOLEANS:
        return bool(value)
    if name in _JSON:
        return json.loads(value) if isinstance(value, str) else value
    return value


class SqliteReader:
    """A read-only ``sqlite3`` connection to an up-to-date jixiao database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        cur = self._conn.execute(sql, params or {})
        names = [d[0] for d in cur.description]
        return [{n: _convert(n, v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()]

    def tuples(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows as the driver gives them (no conversion)."""
        return self._conn.execute(sql, params or {}).fetchall()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: every statement inside sees the same committed state (WAL),
        as the ORM's reads in one transaction do."""
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    def projects(self) -> list[ProjectRow]:
        """:data:`PROJECTS_SQL` (what :func:`store.projects.list_projects` runs)."""
        return [ProjectRow(**r) for r in self.rows(PROJECTS_SQL)]

    def schedules(self, *, project: str | None = None) -> list[tuple[ScheduleRow, str]]:
        """:func:`schedules_sql` (what :func:`store.schedules.list_schedules` runs)."""
        rows = self.rows(schedules_sql(project=bool(project)), {"code": project} if project else {})
        return [(ScheduleRow(**{c: r[c] for c in SCHEDULE_COLUMNS}), r["code"]) for r in rows]

    def project(self, code: str) -> ProjectRow | None:
        """:data:`PROJECT_BY_CODE_SQL` (what :func:`store.projects.find_project` runs)."""
        rows = self.rows(PROJECT_BY_CODE_SQL, {"code": code})
        return ProjectRow(**rows[0]) if rows else None

    def definition(self, project: ProjectRow) -> dict[str, Any] | None:
        """The JSON of ``project``'s current definition (:data:`DEFINITION_SQL`), None if missing."""
        rows = self.rows(DEFINITION_SQL, {"pid": project.id, "version": project.current_version})
        return rows[0]["definition"] if rows else None

    def active_overrides(self, project_id: int) -> dict[str, ActiveOverride]:
        """What :func:`store.scores.active_overrides` gives: :data:`OVERRIDES_SQL`, folded."""
        return active_overrides_of(self.rows(OVERRIDES_SQL, {"pid": project_id}))

    def latest_fingerprint(self, project_id: int) -> str | None:
        """The fingerprint of the latest snapshot (:func:`latest_snapshot_sql`), None if none."""
        rows = self.tuples(latest_snapshot_sql(("fingerprint",)), {"pid": project_id})
        return rows[0][0] if rows else None


def open_sqlite(url: str, *, busy_timeout_ms: int = 30_000) -> SqliteReader | None:
    """A :class:`SqliteReader` on ``url``'s file, or None when the fast path does not apply:
    not a ``sqlite+aiosqlite:///`` file, no file yet, or its schema is not exactly
    :func:`store.migrate.shipped_head` (then the normal path migrates it)."""
    from store.migrate import shipped_head

    prefix = "sqlite+aiosqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix) :].split("?", 1)[0]
    if path in ("", ":memory:") or path.startswith("file:") or not Path(path).is_file():
        return None
    try:
        # mode=ro: this path can never write (or create) the database; WAL readers see the
        # last committed state without blocking the server's writer
        conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True,
                               timeout=busy_timeout_ms / 1000)  # fmt: skip
    except sqlite3.Error:
        return None
    try:
        stored = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        conn.close()
        return None
    head = shipped_head()
    if head is None or [r[0] for r in stored] != [head]:
        conn.close()
        return None
    return SqliteReader(conn)


# ------------------------------------------------------------------------- the one write


def sqlite_snapshot_values(
    *,
    project_id: int,
    definition_version: int,
    computed_at: datetime,
    total: Decimal,
    grade: str,
    fingerprint: str,
    trigger: str,
    table: dict[str, Any],
) -> dict[str, Any]:
    """:data:`SNAPSHOT_INSERT_SQL`'s parameters stored as the ORM stores them on SQLite: naive UTC
    datetime text, the decimal's canonical string (``store.types.DecimalText``), the JSON text of
    SQLAlchemy's ``JSON`` type (``json.dumps`` with its defaults). A test compares the rows."""
    if computed_at.utcoffset() is None:
        raise ValueError("computed_at must be timezone-aware")
    return {
        "project_id": project_id,
        "definition_version": definition_version,
        "computed_at": computed_at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds"),
        "total": str(Decimal(total)),
        "grade": grade,
        "fingerprint": fingerprint,
        "trigger": trigger,
        "table": json.dumps(table),
    }


def keep_snapshot_sqlite(
    url: str, values: dict[str, Any], *, synchronous: str = "FULL", busy_timeout_ms: int = 30_000
) -> bool:
    """Insert the snapshot ``values`` (:func:`sqlite_snapshot_values`) into ``url``'s SQLite file
    unless its project's latest snapshot has the same fingerprint (:func:`keeps_snapshot`), in one
    ``BEGIN IMMEDIATE`` transaction (so two writers cannot both decide to insert). Returns whether
    a row was inserted. ``synchronous`` is the engine's PRAGMA (``settings.sqlite_synchronous``)."""
    prefix = "sqlite+aiosqlite:///"
    if not url.startswith(prefix):
        raise ValueError(f"not a SQLite file URL: {url}")
    if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
        raise ValueError(f"sqlite synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}")
    path = Path(url[len(prefix) :].split("?", 1)[0]).resolve()
    conn = sqlite3.connect(
        f"file:{path}?mode=rw", uri=True, timeout=busy_timeout_ms / 1000, isolation_level=None
    )
    try:
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            latest = conn.execute(
                latest_snapshot_sql(("fingerprint",)), {"pid": values["project_id"]}
            ).fetchone()
            keep = keeps_snapshot(latest[0] if latest else None, values["fingerprint"])
            if keep:
                conn.execute(SNAPSHOT_INSERT_SQL, values)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return keep
    finally:
        conn.close()
