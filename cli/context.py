"""What a CLI command gets: settings, and a lazily built (migrated) database.

This module is imported to build the parser, so it imports nothing heavy: SQLAlchemy, Alembic,
the store and the pydantic settings are imported on first use (``jixiao --help`` stays well under
a second, and a read command that only needs the database URL never builds the settings).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

    from config.settings import Settings
    from store.db import SessionMaker
    from store.lite import SqliteReader


class Context:
    """``out``/``err`` for the command's output; ``overrides`` are the ``--database-url`` /
    ``--data-dir`` options (setting names → values), ``settings`` given ready-made by tests."""

    def __init__(
        self,
        *,
        out: TextIO,
        err: TextIO,
        settings: Settings | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.out = out
        self.err = err
        self._settings = settings
        self._overrides = dict(overrides or {})
        self._engine: AsyncEngine | None = None

    @property
    def settings(self) -> Settings:
        """Every setting (pydantic-settings, validated), built on first use."""
        if self._settings is None:
            from pydantic import ValidationError

            from config.settings import load_settings

            try:
                self._settings = load_settings(**self._overrides)
            except ValidationError as exc:  # a JIXIAO_* variable or .env entry: the operator's to fix
                raise CommandError(f"设置无效 / invalid settings: {exc}") from exc
        return self._settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        self._settings = value

    @property
    def db_url(self) -> str:
        """The effective database URL — ``settings.db_url``, found without building the settings
        while nothing else needed them (:mod:`config.location`, the same lookup)."""
        if self._settings is not None:
            return self._settings.db_url
        from config.location import locate

        return locate(self._overrides)[1]

    @property
    def data_dir(self) -> Path:
        """``settings.data_dir``, found the same way as :attr:`db_url`."""
        if self._settings is not None:
            return self._settings.data_dir
        from config.location import locate

        return locate(self._overrides)[0]

    async def sessionmaker(self) -> SessionMaker:
        """The database, migrated to the latest schema on first use.

        The migration check is one cheap query: Alembic runs only when the stored schema version
        differs from the newest migration shipped with this code. A SQLite file that does not exist
        yet is announced on stderr, so a command run from an unexpected place does not silently
        work on a new, empty database.
        """
        if self._engine is None:
            from store.db import create_engine
            from store.migrate import ensure_schema

            self._announce_new_sqlite_file()
            self._engine = create_engine(self.settings.db_url, **self.settings.engine_options())
            await ensure_schema(self._engine)
        from store.db import make_sessionmaker

        return make_sessionmaker(self._engine)

    def lite_reader(self) -> SqliteReader | None:
        """For read commands: the database through the stdlib ``sqlite3``, read-only, without
        importing SQLAlchemy or the table classes (most of a read command's time) — or None when
        that does not apply (PostgreSQL, no database yet, a schema to migrate): then use the
        store's ORM function on :meth:`sessionmaker`. Both run the same statements
        (:mod:`store.lite`). The caller closes the reader."""
        from store.lite import open_sqlite

        return open_sqlite(self.db_url)

    def _announce_new_sqlite_file(self) -> None:
        path = sqlite_path(self.db_url)
        if path is not None and not path.exists():
            print(f"新建数据库 / creating a new database: {path}", file=self.err)

    @contextmanager
    def working(self, text: str) -> Iterator[None]:
        """A spinner with ``text`` while a long step runs, for a person at a terminal only."""
        if not progress_enabled(self.err):
            yield
            return
        from rich.console import Console

        with Console(file=self.err).status(text):
            yield

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)


@asynccontextmanager
async def transaction(sessionmaker: SessionMaker) -> AsyncIterator[AsyncSession]:
    """:func:`store.db.transaction`, imported on first use (command modules import this one)."""
    from store.db import transaction as store_transaction

    async with store_transaction(sessionmaker) as session:
        yield session


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite+aiosqlite:///…`` URL, or None for other databases and ``:memory:``."""
    prefix = "sqlite+aiosqlite:///"
    if not url.startswith(prefix):
        return None
    rest = url[len(prefix) :].split("?", 1)[0]
    return None if rest in ("", ":memory:") else Path(rest)


def progress_enabled(stream: Any) -> bool:
    """Show progress bars only to a person at a terminal (not to pipes, logs or tests)."""
    return bool(getattr(stream, "isatty", lambda: False)()) and stream is not sys.__stdin__


class CommandError(Exception):
    """A user-facing failure: printed as-is (no traceback), exit status 1."""
