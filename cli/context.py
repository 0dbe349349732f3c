"""What a CLI command gets: settings, and a lazily built (migrated) database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings
from store.db import SessionMaker, create_engine, make_sessionmaker
from store.migrate import upgrade


@dataclass
class Context:
    settings: Settings
    out: TextIO
    err: TextIO
    _engine: AsyncEngine | None = field(default=None, repr=False)

    async def sessionmaker(self) -> SessionMaker:
        """The database, migrated to the latest schema on first use."""
        if self._engine is None:
            self._engine = create_engine(self.settings.db_url, **self.settings.engine_options())
            await upgrade(self._engine)
        return make_sessionmaker(self._engine)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)


class CommandError(Exception):
    """A user-facing failure: printed as-is (no traceback), exit status 1."""
