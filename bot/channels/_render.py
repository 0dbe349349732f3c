"""Rendering shared by the adapters: escaping per target format, table layouts, and packing a message
into size-limited parts at block and table-row boundaries.

How splitting works: a flavour turns blocks into `Seg`ments (a line of text, one table row, …). Rows
of one table share a `group`; the group's `opener` (header row, `<pre>`, code fence) is emitted before
the first row of that table in every part and its `closer` after the last, so each part is a
well-formed message with the header repeated. `pack()` fills parts greedily up to a budget measured
with the adapter's own cost function (UTF-8 bytes, chars, or JSON-escaped bytes), so a part never
exceeds the vendor limit. Parts get "(i/n)" markers in their titles.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .message import Bullets, Link, Message, Table, Text

Cost = Callable[[str], int]

#: Titles longer than this (chars) are cut: a title repeats in every part and must not eat the budget.
TITLE_MAX_CHARS = 200
#: Reserve room for the widest marker we ever print.
WORST_MARKER = " (999/999)"
ELLIPSIS = "…"


def utf8_len(text: str) -> int:
    """Size in UTF-8 bytes."""
    return len(text.encode("utf-8"))


def char_len(text: str) -> int:
    """Size in characters (code points)."""
    return len(text)


# ---------------------------------------------------------------------------------------------- escaping

_MD_INLINE = re.compile(r"([\\`*_\[\]<>|~&$])")
# Block markers only count at line start and (except `>`) when followed by a space, a repeat of
# themselves ("---", "==" setext/rules, "##") or the end of the line.
_MD_LINE_START = re.compile(r"^(\s*)(>|([#+\-=])(?=\s|\3|$))", re.MULTILINE)
_MD_ORDERED = re.compile(r"^(\s*\d+)([.)])(?=\s|$)", re.MULTILINE)


def md_escape(text: str) -> str:
    """Escape user text for CommonMark-like chat markdown (WeCom, DingTalk, Feishu cards).

    Backslash-escapes inline specials everywhere (`*_~` emphasis, `[` links, `` ` `` code, `|` table
    cells, `<` tags such as WeCom's `<font>`/`<@userid>` or `<script>`, `&` entities, `$` maths) and
    block markers only at line start (`#` heading, `-`/`+` list, `>` quote, `1.` ordered list), so
    everyday text like "2.5 - 3" stays readable.
    """
    text = _MD_INLINE.sub(r"\\\1", text)
    text = _MD_LINE_START.sub(lambda m: f"{m[1]}\\{m[2]}", text)
    return _MD_ORDERED.sub(r"\1\\\2", text)


def md_cell(text: str) -> str:
    """Escape text that sits inside a line (table cell, list-item field): inline specials only, and a
    newline (which would end the row) becomes a space."""
    return _MD_INLINE.sub(r"\\\1", " ".join(text.splitlines()))


def html_escape(text: str) -> str:
    """Escape for HTML (Telegram, email): & < > " '."""
    return html.escape(text, quote=True)


def slack_escape(text: str) -> str:
    """Slack mrkdwn: only &, < and > are control characters (they form links and @-mentions such as
    <!channel>); Slack offers no escape for * _ ~, so those are left as typed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(text: str) -> str:
    """No escaping (console, plain-text email part)."""
    return text


def display_width(text: str) -> int:
    """Monospace columns: CJK wide/fullwidth characters take two (for aligned <pre>/code tables)."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def aligned_rows(table: Table, *, clean: Callable[[str], str] = plain) -> tuple[str, str, list[str]]:
    """Header line, rule line and row lines of a monospace table (no trailing newlines). Cells are
    flattened to one line and passed through `clean` before measuring."""
    header = [clean(" ".join(h.splitlines())) for h in table.headers]
    rows = [[clean(" ".join(c.splitlines())) for c in row] for row in table.rows]
    widths = [max([display_width(h)] + [display_width(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(pad(c, w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "-+-".join("-" * w for w in widths)
    return line(header), rule, [line(r) for r in rows]


# ---------------------------------------------------------------------------------------------- segments


@dataclass(frozen=True, slots=True)
class Seg:
    """A unit that is never split across parts (except an oversized plain line, see `pack`).

    `text` includes its line ending. Rows of one table share `group`; `opener`/`closer` wrap the rows of
    that table within each part (header row, fences)."""

    text: str
    group: int | None = None
    opener: str = ""
    closer: str = ""


class Flavor:
    """How blocks become segments for one target format. Subclasses override the hooks."""

    line_end = "\n"
    block_gap = "\n"

    def escape(self, text: str) -> str:
        return text

    def heading(self, title: str) -> str:
        return self.escape(title)

    def text(self, block: Text) -> list[Seg]:
        return [Seg(self.escape(line) + self.line_end) for line in block.text.splitlines() or [""]]

    def bullets(self, block: Bullets) -> list[Seg]:
        return [Seg("- " + self.escape(" ".join(item.splitlines())) + self.line_end) for item in block.items]

    def table(self, block: Table, group: int) -> list[Seg]:
        raise NotImplementedError

    def link(self, link: Link) -> list[Seg]:
        return [Seg(f"{self.escape(link.text)}: {link.url}{self.line_end}")]

    def segments(self, message: Message) -> list[Seg]:
        segs: list[Seg] = []
        for number, block in enumerate(message.blocks):
            if segs:
                segs.append(Seg(self.block_gap))
            if isinstance(block, Text):
                segs += self.text(block)
            elif isinstance(block, Bullets):
                segs += self.bullets(block)
            else:
                segs += self.table(block, number)
        if message.link is not None:
            if segs:
                segs.append(Seg(self.block_gap))
            segs += self.link(message.link)
        return segs


class MarkdownFlavor(Flavor):
    """Chat markdown. With `tables=True` a GFM pipe table (WeCom markdown_v2); otherwise each row becomes
    a self-describing list item "- **first cell** · header: value …" (DingTalk and Feishu card
    markdown have no reliable tables), which keeps headers visible in every part."""

    def __init__(self, *, tables: bool, line_end: str = "\n") -> None:
        self.tables = tables
        self.line_end = line_end
        self.block_gap = "\n"

    def escape(self, text: str) -> str:
        return md_escape(text)

    def heading(self, title: str) -> str:
        return "## " + md_escape(title)

    def table(self, block: Table, group: int) -> list[Seg]:
        if self.tables:
            head = "| " + " | ".join(md_cell(h) for h in block.headers) + " |\n"
            rule = "|" + "|".join(" --- " for _ in block.headers) + "|\n"
            return [
                Seg("| " + " | ".join(md_cell(c) for c in row) + " |\n", group, opener=head + rule)
                for row in block.rows
            ]
        if block.line:
            return self.compact_table(block, group)
        segs = []
        for row in block.rows:
            first, *rest = row
            pairs = [f"{md_cell(h)}: {md_cell(c)}" for h, c in zip(block.headers[1:], rest, strict=True)]
            label = f"**{md_cell(first)}**" if first.strip() else md_cell(block.headers[0])
            segs.append(Seg("- " + " · ".join([label, *pairs]) + self.line_end, group))
        return segs

    def compact_table(self, block: Table, group: int) -> list[Seg]:
        """The table as a person writes it in a chat app: a bold heading per group, then one list item
        per row from the producer's `line` template (e.g. "- 立项程序规范性 5.00/5"). The template filled
        with the headers ("三级指标 得分/分值") opens the table in every part, as a legend; a part
        that starts inside a group repeats that group's heading as "**产出**（续）"."""
        legend = block.line.format(*(md_cell(h) for h in block.headers)) + self.line_end
        segs = []
        heading = ""
        for row in block.rows:
            item = "- " + block.line.format(*(md_cell(c) for c in row)) + self.line_end
            if block.group >= 0 and row[block.group].strip():
                heading = f"**{md_cell(row[block.group])}**"
                # The heading travels with the group's first row: a part never ends on a heading.
                segs.append(Seg(heading + self.line_end + item, group, opener=legend))
            else:
                # A part that starts inside a group repeats the group's heading, marked as continued,
                # so its first rows are not read as belonging to the group before.
                continued = f"{heading}（续）{self.line_end}" if heading else ""
                segs.append(Seg(item, group, opener=legend + continued))
        return segs

    def link(self, link: Link) -> list[Seg]:
        # Parentheses in the URL would end the link target early; percent-encode them.
        url = link.url.replace("(", "%28").replace(")", "%29").replace(" ", "%20")
        return [Seg(f"[{md_escape(link.text)}]({url}){self.line_end}")]


class HtmlFlavor(Flavor):
    """Telegram HTML: tables as aligned monospace text in <pre>."""

    def escape(self, text: str) -> str:
        return html_escape(text)

    def heading(self, title: str) -> str:
        return f"<b>{html_escape(title)}</b>"

    def bullets(self, block: Bullets) -> list[Seg]:
        return [Seg("• " + html_escape(" ".join(item.splitlines())) + "\n") for item in block.items]

    def table(self, block: Table, group: int) -> list[Seg]:
        # Align on raw text, then escape each line: entities must not count toward column widths.
        head, rule, lines = aligned_rows(block)
        opener = "<pre>" + html_escape(head) + "\n" + rule + "\n"
        return [Seg(html_escape(line) + "\n", group, opener=opener, closer="</pre>\n") for line in lines]

    def link(self, link: Link) -> list[Seg]:
        return [Seg(f'<a href="{html_escape(link.url)}">{html_escape(link.text)}</a>\n')]


class SlackFlavor(Flavor):
    """Slack mrkdwn: tables in ``` code blocks (no native tables)."""

    def escape(self, text: str) -> str:
        return slack_escape(text)

    def heading(self, title: str) -> str:
        # `*` inside the title would end the bold early; a lookalike keeps the title intact.
        return "*" + slack_escape(title.replace("*", "∗")) + "*"

    def bullets(self, block: Bullets) -> list[Seg]:
        return [Seg("• " + slack_escape(" ".join(item.splitlines())) + "\n") for item in block.items]

    def table(self, block: Table, group: int) -> list[Seg]:
        # A literal ``` in a cell would close the fence; U+02CB looks alike and cannot.
        head, rule, lines = aligned_rows(block, clean=lambda s: s.replace("`", "ˋ"))
        opener = "```\n" + slack_escape(head) + "\n" + rule + "\n"
        return [Seg(slack_escape(line) + "\n", group, opener=opener, closer="```\n") for line in lines]

    def link(self, link: Link) -> list[Seg]:
        url = slack_escape(link.url).replace("|", "%7C")
        return [Seg(f"<{url}|{slack_escape(link.text).replace('|', '¦')}>\n")]


class PlainFlavor(Flavor):
    """Plain text (console, text/plain email part)."""

    def heading(self, title: str) -> str:
        return title + "\n" + "=" * min(display_width(title), 60)

    def table(self, block: Table, group: int) -> list[Seg]:
        head, rule, lines = aligned_rows(block)
        return [Seg(line + "\n", group, opener=head + "\n" + rule + "\n") for line in lines]


# ---------------------------------------------------------------------------------------------- packing


def _cut(text: str, budget: int, cost: Cost) -> int:
    """Largest prefix length of `text` whose cost fits `budget` (binary search; cost is monotonic)."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _safe_cut(text: str, at: int) -> int:
    """Move a cut left so it does not split an escape: a backslash escape or an HTML entity."""
    amp = text.rfind("&", max(0, at - 10), at)
    if amp != -1 and ";" not in text[amp:at]:
        at = amp
    while at > 0 and text[at - 1] == "\\":
        at -= 1
    space = text.rfind(" ", max(0, at - 40), at)  # prefer a word boundary if one is near
    return space + 1 if space > 0 else at


def _shrink(seg: Seg, budget: int, cost: Cost) -> list[Seg]:
    """Make an oversized segment fit an empty part. Plain text is split into several segments; a table
    row is truncated with an ellipsis (splitting a row would break the table's shape)."""
    if seg.group is None:
        body, end = (seg.text[:-1], "\n") if seg.text.endswith("\n") else (seg.text, "")
        pieces: list[Seg] = []
        while body:
            at = _cut(body, budget - cost(end), cost)
            at = _safe_cut(body, at) or at or 1
            pieces.append(Seg(body[:at] + end))
            body = body[at:]
        return pieces
    room = budget - cost(seg.opener) - cost(seg.closer) - cost(ELLIPSIS + "\n")
    if room <= 0:
        raise ValueError("part budget too small for a table header; raise the limit or shorten headers")
    body = seg.text.rstrip("\n")
    at = _safe_cut(body, _cut(body, room, cost)) or _cut(body, room, cost)
    return [Seg(body[:at] + ELLIPSIS + "\n", seg.group, seg.opener, seg.closer)]


def pack(segments: Iterable[Seg], *, budget: int, cost: Cost) -> list[str]:
    """Greedily fill parts with whole segments; each returned body costs at most `budget`."""
    if budget <= 0:
        raise ValueError(f"part budget must be positive, got {budget}")
    queue = deque(segments)
    parts: list[str] = []
    current: list[str] = []
    used = 0
    open_group: int | None = None
    open_closer = ""

    def flush() -> None:
        nonlocal current, used, open_group, open_closer
        if open_group is not None:
            current.append(open_closer)
        if current and "".join(current).strip():
            parts.append("".join(current))
        current, used, open_group, open_closer = [], 0, None, ""

    while queue:
        seg = queue.popleft()
        continuing = seg.group is not None and seg.group == open_group
        if continuing:
            extra, pieces = cost(seg.text), [seg.text]
        elif seg.group is not None:
            extra = cost(seg.opener) + cost(seg.text) + cost(seg.closer)
            pieces = [seg.opener, seg.text]
        else:
            extra, pieces = cost(seg.text), [seg.text]
        if used + extra <= budget:
            if not continuing and open_group is not None:
                current.append(open_closer)  # its cost was reserved when the group opened
                open_group, open_closer = None, ""
            if seg.group is not None and not continuing:
                open_group, open_closer = seg.group, seg.closer
            current.extend(pieces)
            used += extra
        elif used == 0 or (not current and open_group is None):
            queue.extendleft(reversed(_shrink(seg, budget, cost)))
        else:
            if seg.group is None and seg.text.strip() == "":
                continue  # a block gap at a part boundary is noise
            flush()
            queue.appendleft(seg)
    flush()
    return parts or [""]


@dataclass(frozen=True, slots=True)
class TextPart:
    """A rendered part before the adapter wraps it: title (with marker) and escaped body."""

    title: str
    body: str
    index: int
    total: int


def split_message(
    message: Message,
    flavor: Flavor,
    *,
    limit: int,
    cost: Cost,
    overhead: Callable[[str], int],
) -> list[TextPart]:
    """Render `message` with `flavor` into parts whose body cost plus `overhead(title)` stays within
    `limit`. `overhead(title)` must return the cost of everything except the body (title line,
    envelope), measured with the same unit as `cost`."""
    title = message.title.strip() or "(untitled)"
    if len(title) > TITLE_MAX_CHARS:
        title = title[: TITLE_MAX_CHARS - 1] + ELLIPSIS
    budget = limit - overhead(title + WORST_MARKER)
    bodies = pack(flavor.segments(message), budget=budget, cost=cost)
    total = len(bodies)
    return [
        TextPart(title if total == 1 else f"{title} ({i}/{total})", body.rstrip("\n"), i, total)
        for i, body in enumerate(bodies, start=1)
    ]
