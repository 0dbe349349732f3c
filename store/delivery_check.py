"""Before sending: which units' channel settings name a secret variable that is not set.

A unit's channel config references secrets by environment variable (``secret_env = "NAME"``,
see ``config.definition``); the sender reads them at send time. Launching a campaign while a
variable is missing used to fail every such send and disable the endpoints; the console (and the
API) ask this first and show which units and which variables are missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config.secrets import missing_env, secret_environment
from store.models import Campaign, Unit


@dataclass(frozen=True)
class MissingSecret:
    unit_key: str
    unit_name: str
    channel_kind: str
    variable: str
    setting: str  # the config key, e.g. ``secret_env``


def secret_variables(config: Mapping[str, object]) -> list[tuple[str, str]]:
    """``(config key, variable name)`` for every ``*_env`` reference in a channel config."""
    return [(k, str(v)) for k, v in (config or {}).items() if k.endswith("_env") and v]


async def missing_secrets(
    session: AsyncSession, campaign: Campaign, *, env: Mapping[str, str] | None = None
) -> list[MissingSecret]:
    """The audience units whose channel names a variable that ``env`` (default: the process
    environment over ``.env``, ``config.secrets.secret_environment`` — where the sender looks)
    does not set or sets empty, by unit key."""
    env = secret_environment() if env is None else env
    stmt = (
        select(Unit).where(Unit.project_id == campaign.project_id, Unit.active.is_(True)).order_by(Unit.key)
    )  # type: ignore[attr-defined]
    if campaign.unit_ids is not None:
        stmt = stmt.where(Unit.id.in_(list(campaign.unit_ids)))  # type: ignore[union-attr]
    out = []
    for unit in (await session.execute(stmt)).scalars():
        for setting, variable in secret_variables(unit.channel_config):
            if missing_env(variable, env):
                out.append(MissingSecret(unit.key, unit.name, unit.channel_kind, variable, setting))
    return out
