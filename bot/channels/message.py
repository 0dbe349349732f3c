"""Platform-neutral outbound message model.

A `Message` is what the rest of the service builds (a reminder, a score summary); each adapter turns it
into its vendor's format with `render()`. Everything here is plain, immutable data: user-supplied text
is stored raw and escaped only at render time, once per target format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["Attachment", "Block", "Bullets", "Link", "Message", "Table", "Text"]


def _tuple(value: object) -> tuple:
    # Callers often pass lists; freezing them keeps Message hashable and safe to share between tasks.
    return tuple(value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Text:
    """A paragraph of raw text; newlines are kept as line breaks."""

    text: str


@dataclass(frozen=True, slots=True)
class Table:
    """A table of raw strings. Every row must have as many cells as there are headers.

    Chat apps without tables (DingTalk, Feishu card markdown) cannot show a grid, so the producer may
    say how a person would write the table there instead:

    - `group`: the index of a column that groups rows (e.g. 一级指标), blank where the row belongs to
      the group above; each new group becomes a heading line. -1: no grouping column.
    - `line`: a ``str.format`` template over a row's cells by index (e.g. ``"{2} {4}/{3}"`` for
      "名称 得分/分值"); each row becomes one list item. Empty: the generic "header: value" items.
    """

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    group: int = -1
    line: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", tuple(str(h) for h in self.headers))
        object.__setattr__(self, "rows", tuple(tuple(str(c) for c in row) for row in self.rows))
        width = len(self.headers)
        for number, row in enumerate(self.rows, start=1):
            if len(row) != width:
                raise ValueError(
                    f"Table row {number} has {len(row)} cells, expected {width} (one per header)"
                )
        if not -1 <= self.group < width:
            raise ValueError(f"Table.group {self.group} is not a column index (0–{width - 1}) or -1")
        if self.line:
            try:
                self.line.format(*self.headers)
            except (IndexError, KeyError, ValueError) as exc:
                raise ValueError(f"Table.line {self.line!r} does not fit {width} columns: {exc}") from None


@dataclass(frozen=True, slots=True)
class Bullets:
    """An unordered list of raw strings."""

    items: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(str(i) for i in self.items))


Block = Text | Table | Bullets


@dataclass(frozen=True, slots=True)
class Link:
    """A link shown after the blocks (e.g. the full report). Only http(s) URLs are accepted, so a
    hostile `javascript:` URL can never reach a chat client or mail reader."""

    url: str
    text: str

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme.lower() not in ("http", "https"):
            raise ValueError(f"Link.url must be http(s), got scheme {urlsplit(self.url).scheme!r}")


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file to attach; `content` is the raw bytes, `mime` e.g. 'application/pdf'."""

    filename: str
    content: bytes = field(repr=False)
    mime: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Message:
    """One logical message. Adapters may split it into several parts to respect size limits."""

    title: str
    blocks: tuple[Block, ...] = ()
    link: Link | None = None
    attachments: tuple[Attachment, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", _tuple(self.blocks))
        object.__setattr__(self, "attachments", _tuple(self.attachments))
        for block in self.blocks:
            if not isinstance(block, Text | Table | Bullets):
                raise TypeError(
                    f"Message.blocks holds a {type(block).__name__}; expected Text, Table or Bullets"
                )
