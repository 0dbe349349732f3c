"""Reloading a definition keeps the edits made through the API (the file wins only for fields it
changed since the last load), names every unit and field it changes, and can be previewed."""

from __future__ import annotations

from pathlib import Path

from store.db import transaction
from store.models import Unit
from store.units import update_unit
from tests.cli.helpers import demo_copy, run


def test_reloading_keeps_an_api_channel_edit_and_names_what_it_changes(tmp_path: Path) -> None:
    import asyncio
    from datetime import UTC, datetime

    from sqlalchemy import select

    from store.db import create_engine, make_sessionmaker

    project = demo_copy(tmp_path)
    assert run(tmp_path, "project", "load", str(project))[0] == 0

    async def edit_through_the_api_store_path() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
        try:
            async with transaction(make_sessionmaker(engine)) as session:
                pid = (await session.execute(select(Unit.project_id).where(Unit.key == "v01"))).scalar_one()
                await update_unit(
                    session, pid, "v01", {"channel_kind": "email", "channel_address": "v01@example.com"},
                    now=datetime.now(UTC),
                )  # fmt: skip
        finally:
            await engine.dispose()

    asyncio.run(edit_through_the_api_store_path())
    # The file changes v02's name only; v01's channel was edited through the API.
    toml = project / "project.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace(
            "示例县清泉镇西坪村村民委员会（示例）", "示例县清泉镇西坪村委会"
        ),
        encoding="utf-8",
    )
    code, out, err = run(tmp_path, "project", "load", "--dry-run", str(project))
    assert code == 0, err
    assert "单位 v02" in out and "name: 示例县清泉镇西坪村村民委员会（示例） → 示例县清泉镇西坪村委会" in out
    assert "单位 v01" in out and "channel_kind: 保留接口修改的 email" in out
    assert "dry run: nothing stored" in out

    async def stored() -> dict[str, tuple[str, str]]:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
        try:
            async with transaction(make_sessionmaker(engine)) as session:
                rows = (await session.execute(select(Unit).where(Unit.key.in_(["v01", "v02"])))).scalars()
                return {u.key: (u.name, u.channel_kind) for u in rows}
        finally:
            await engine.dispose()

    assert (
        asyncio.run(stored())["v02"][0] == "示例县清泉镇西坪村村民委员会（示例）"
    )  # the dry run stored nothing
    code, out, err = run(tmp_path, "project", "load", str(project))
    assert code == 0 and "第 2 版" in out, err
    after = asyncio.run(stored())
    assert after["v01"][1] == "email"  # the API edit survived the reload
    assert after["v02"][0] == "示例县清泉镇西坪村委会"  # the file's change was applied
    assert "单位 v02" in out and "更新 / update" in out
