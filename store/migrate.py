"""Schema migrations (Alembic) run programmatically: ``await upgrade(engine)``.

:func:`ensure_schema` is what entry points call: one query reads the stored schema version and
Alembic (≈ 0.5 s of imports and script loading) runs only when it differs from the newest
migration shipped with the code — a CLI read command on an up-to-date database never loads it.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(?:['\"]([^'\"]+)['\"]|None)", re.M)


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent)."""
    from alembic import command

    def _upgrade(conn: object) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def ensure_schema(engine: AsyncEngine) -> None:
    """Migrate to head unless the database already is at :func:`shipped_head` (one query)."""
    if await stored_revision(engine) != shipped_head():
        await upgrade(engine)


async def stored_revision(engine: AsyncEngine) -> str | None:
    """The version in ``alembic_version``, or None when the table does not exist yet."""
    # imported here: store.lite reads shipped_head() without loading SQLAlchemy
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    except DBAPIError:
        return None
    return rows[0][0] if len(rows) == 1 else None


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


def head_revision() -> str | None:
    """Alembic's own idea of the head (loads the scripts; tests compare it to :func:`shipped_head`)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@cache
def shipped_head() -> str | None:
    """The newest revision among the migration files, read as text (no Alembic import).

    The chain is linear: the head is the one revision that no other file names as its
    ``down_revision``. Several heads (an unmerged branch) return None, which makes
    :func:`ensure_schema` hand the decision to Alembic.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        if (rev := _REVISION.search(source)) is None:
            continue
        revisions.add(rev.group(1))
        if (down := _DOWN.search(source)) is not None and down.group(1):
            parents.add(down.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None
