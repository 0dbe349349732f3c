"""Recompute does not depend on table statistics: the fact queries give the same counts either
way, and on PostgreSQL tables left unanalysed by bulk writes are analysed before the facts load."""

from __future__ import annotations

from sqlalchemy import text

from config.loader import load_definition
from store.db import SessionMaker, transaction
from store.facts import ensure_statistics, load_fact_inputs
from store.projects import load_project
from tests.bot.conftest import launch_example_campaign
from tests.conftest import EXAMPLE_PROJECT, Clock
from tests.waits import wait_until_async


async def test_bulk_written_tables_are_analysed_once_before_the_facts_load(
    sessionmaker: SessionMaker, clock: Clock
) -> None:
    async with transaction(sessionmaker) as session:
        project = (await load_project(session, load_definition(EXAMPLE_PROJECT), now=clock(), by="t")).project
    await launch_example_campaign(sessionmaker, project, clock())
    async with transaction(sessionmaker) as session:
        postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        # PostgreSQL publishes other sessions' row counts up to a second late: wait for them.
        async def published() -> bool:
            async with transaction(sessionmaker) as session:
                seen = await session.scalar(
                    text("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'link'")
                )
            return bool(seen)

        await wait_until_async(published, what="PostgreSQL publishes the link table's modified-row count")
    async with transaction(sessionmaker) as session:
        before = await load_fact_inputs(session, project)
        analysed = await ensure_statistics(session)
    async with transaction(sessionmaker) as session:  # statistics views are read once per transaction
        again = await ensure_statistics(session)
        after = await load_fact_inputs(session, project)
        if postgres:
            rows = await session.execute(
                text("SELECT relname FROM pg_stat_user_tables WHERE relname IN ('link', 'unit')")
            )
            assert {r[0] for r in rows} == {"link", "unit"}
    assert before == after
    assert before.invited_units == before.active_units == 121
    assert before.responded_units == 16 and sum(before.satisfaction_counts.values()) == 16
    if postgres:
        assert {"link", "unit"} <= set(analysed) and again == []
    else:
        assert analysed == again == []
