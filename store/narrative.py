"""A project's narrative (the text people write), stored append-only beside its definition.

Functions take the session first and never commit: the caller owns the transaction. The text is
validated by ``config.narrative`` (the one place for its rules) against the indicator keys of the
project's current definition before it is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config.narrative import Narrative, validate_narrative_dict
from store.models import Project, ProjectNarrative
from store.projects import definition_hash, get_definition


@dataclass(frozen=True)
class NarrativeRecord:
    """The narrative that applies now, with its revision (0: nothing written yet)."""

    narrative: Narrative
    revision: int
    definition_version: int | None
    created_at: datetime | None
    created_by: str


async def current_narrative(session: AsyncSession, project: Project) -> NarrativeRecord:
    """The newest narrative of ``project`` (an empty one, revision 0, when none was written)."""
    row = (
        await session.execute(
            select(ProjectNarrative)
            .where(ProjectNarrative.project_id == project.id)
            .order_by(ProjectNarrative.revision.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if row is None:
        return NarrativeRecord(Narrative(), 0, None, None, "")
    return NarrativeRecord(
        Narrative.model_validate(row.body),
        row.revision,
        row.definition_version,
        row.created_at,
        row.created_by,
    )


async def save_narrative(
    session: AsyncSession,
    project: Project,
    narrative: Narrative | dict[str, Any],
    *,
    now: datetime,
    by: str = "",
    filename: str = "narrative",
) -> tuple[NarrativeRecord, bool]:
    """Store ``narrative`` as the project's new revision unless it equals the current one.

    A dict (the API's body, file form) is validated first; a ``Narrative`` is re-checked against
    the current definition's indicator keys. Raises ``config.loader.DefinitionError`` listing
    every problem (nothing is stored then). Returns the record that applies and whether a new
    revision was written."""
    defn = await get_definition(session, project)
    keys = [i.key for i in defn.indicators]
    data = narrative.model_dump(mode="json") if isinstance(narrative, Narrative) else narrative
    checked = validate_narrative_dict(data, filename=filename, indicator_keys=keys)
    body = checked.model_dump(mode="json")
    digest = definition_hash(body)
    current = await current_narrative(session, project)
    if current.revision and definition_hash(current.narrative.model_dump(mode="json")) == digest:
        return current, False
    row = ProjectNarrative(
        project_id=project.id,  # type: ignore[arg-type]
        revision=current.revision + 1,
        definition_version=project.current_version,
        content_hash=digest,
        body=body,
        created_at=now,
        created_by=by[:100],
    )
    session.add(row)
    await session.flush()
    return NarrativeRecord(checked, row.revision, row.definition_version, now, row.created_by), True
