"""Alembic builds the schema from empty on each backend, and it matches the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from store.db import create_engine
from store.migrate import current_revision, head_revision, upgrade
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
