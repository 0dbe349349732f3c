"""The one shape most text channels share: split a message, prefix each part with its heading,
wrap the text in the vendor's payload, and measure it in the vendor's unit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from ._render import Flavor, TextPart, split_message
from .base import Part, part_key
from .message import Message


def heading_parts(
    message: Message,
    *,
    flavor: Flavor,
    limit: int,
    cost: Callable[[str], int],
    unit: Literal["bytes", "chars"],
    sep: str,
    payload: Callable[[TextPart, str], dict[str, Any]],
    dedupe_key: str | None,
) -> list[Part]:
    """Parts of ``message`` whose text (heading + ``sep`` + body) costs ≤ ``limit`` in ``unit``;
    ``payload(part, text)`` builds the vendor body around that text."""
    texts = split_message(
        message, flavor, limit=limit, cost=cost, overhead=lambda title: cost(flavor.heading(title) + sep)
    )
    parts = []
    for t in texts:
        text = f"{flavor.heading(t.title)}{sep}{t.body}".rstrip()
        parts.append(
            Part(
                payload(t, text),
                t.index,
                t.total,
                cost(text),
                unit,
                dedupe_key=part_key(dedupe_key, t.index, t.total),
            )
        )
    return parts
