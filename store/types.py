"""Column types shared by the tables.

Why these exist:
- SQLite has no decimal type and silently turns NUMERIC into floats, so exact decimals (scores,
  rates) are stored as text and money as integer fen (BIGINT) — see DESIGN.md.
- ``JSON`` becomes JSONB on PostgreSQL so it can be indexed later; on SQLite it is text.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

#: JSON document column (JSONB on PostgreSQL). Reassign the value to persist a change:
#: in-place mutation of a loaded dict is not tracked.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class DecimalText(TypeDecorator[Decimal]):
    """An exact ``Decimal`` stored as its canonical string (never float on any backend)."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("DecimalText refuses float; pass Decimal or str")
        return str(Decimal(value))

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)
