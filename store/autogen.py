"""Developer helper: autogenerate a migration from the models.

    .venv/bin/python -m store.autogen "add foo"

It upgrades a throw-away SQLite file to head, then lets Alembic diff it against the models.
Review the generated file before committing.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from store.migrate import alembic_config


def main(message: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'autogen.db'}"
        cfg = alembic_config(url)
        command.upgrade(cfg, "head")
        command.revision(cfg, message=message, autogenerate=True)


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "change")
