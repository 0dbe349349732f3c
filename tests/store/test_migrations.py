"""Alembic builds the schema from empty on each backend, and it matches the models exactly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from store import migrate
from store.db import create_engine
from store.migrate import (
    current_revision,
    ensure_schema,
    head_revision,
    shipped_head,
    stored_revision,
    upgrade,
)
from store.models import metadata


async def test_upgrade_from_empty_reaches_head_and_matches_the_models(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
        assert diff == [], f"models and migrations differ; run python -m store.autogen: {diff}"
    finally:
        await engine.dispose()


async def test_upgrade_twice_is_harmless(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await upgrade(engine)
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


def test_the_head_read_from_the_migration_files_is_alembics_head() -> None:
    assert shipped_head() == head_revision()


async def test_ensure_schema_migrates_an_empty_database_and_skips_an_up_to_date_one(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(db_url)
    try:
        assert await stored_revision(engine) is None
        await ensure_schema(engine)
        assert await stored_revision(engine) == head_revision()

        calls: list[object] = []

        async def counting_upgrade(*args: object, **kwargs: object) -> None:
            calls.append(args)

        monkeypatch.setattr(migrate, "upgrade", counting_upgrade)
        await ensure_schema(engine)
        assert calls == [], "an up-to-date database must not run Alembic again"

        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = 'older'"))
        await ensure_schema(engine)
        assert len(calls) == 1, "a database at another version is handed to Alembic"
    finally:
        await engine.dispose()
