"""Rendering: size limits, row-boundary splitting with repeated headers, escaping."""

from __future__ import annotations

import html
import json
import re

import pytest

from bot.channels import adapter_for
from bot.channels._render import HtmlFlavor, Seg, pack, split_message
from bot.channels.message import Link, Message, Table, Text
from tests.channels.conftest import SECRET, part_text, summary_message

SPLITTING_KINDS = ("wecom", "dingtalk", "feishu", "telegram", "slack")


def vendor_size(kind: str, payload: dict) -> int:
    """Size as the vendor measures it (bytes or chars), including Feishu's signature fields."""
    if kind == "wecom":
        return len(payload["markdown_v2"]["content"].encode())
    if kind == "dingtalk":
        return len(payload["markdown"]["text"].encode())
    if kind == "feishu":
        signed = {**payload, "timestamp": "1764000000", "sign": "x" * 44}
        return len(json.dumps(signed, ensure_ascii=False, separators=(",", ":")).encode())
    return len(payload["text"])


VENDOR_LIMIT = {"wecom": 4096, "dingtalk": 20000, "feishu": 20 * 1024, "telegram": 4096, "slack": 3000}


@pytest.mark.parametrize("kind", SPLITTING_KINDS)
def test_a_long_table_is_split_at_row_boundaries_within_the_vendor_limit(kind: str) -> None:
    message = summary_message(rows=600)
    parts = adapter_for(kind).render(message, dedupe_key="summary:g1:2026-11-25")
    texts = [part_text(kind, p) for p in parts]

    assert len(parts) > 1
    assert [(p.index, p.total) for p in parts] == [(i, len(parts)) for i in range(1, len(parts) + 1)]
    assert [p.dedupe_key for p in parts] == [f"summary:g1:2026-11-25#p{i}" for i in range(1, len(parts) + 1)]
    for part, text in zip(parts, texts, strict=True):
        assert vendor_size(kind, part.payload) <= VENDOR_LIMIT[kind]
        assert f"({part.index}/{part.total})" in text
        assert "得分率" in text, "every part repeats the table header"
    found = [m for text in texts for m in re.findall(r"R\d{4}", text)]
    assert sorted(found) == [f"R{i:04d}" for i in range(1, 601)], "every row exactly once, none cut"


@pytest.mark.parametrize("kind", ("telegram", "slack"))
def test_code_block_tables_are_closed_in_every_part(kind: str) -> None:
    opener, closer = ("<pre>", "</pre>") if kind == "telegram" else ("```", "```")
    for part in adapter_for(kind).render(summary_message(rows=300)):
        text = part_text(kind, part)
        assert text.count(opener) >= 1
        if kind == "telegram":
            assert text.count(opener) == text.count(closer)
        else:
            assert text.count("```") % 2 == 0


@pytest.mark.parametrize(
    "kind", ("wecom", "dingtalk", "feishu", "telegram", "slack", "webhook", "console", "email")
)
def test_a_short_message_renders_as_one_part_without_a_marker(kind: str) -> None:
    parts = adapter_for(kind).render(summary_message(rows=3))
    assert len(parts) == 1
    assert "(1/1)" not in part_text(kind, parts[0])
    assert "R0003" in part_text(kind, parts[0])


@pytest.mark.parametrize("kind", ("wecom", "dingtalk", "feishu"))
def test_markdown_specials_and_tags_in_user_text_are_escaped(kind: str) -> None:
    text = part_text(kind, adapter_for(kind).render(summary_message(hostile=True))[0])
    assert "<script>" not in text and r"\<script\>" in text
    assert "**bold**" not in text and r"\*\*bold\*\*" in text
    assert "[evil](javascript" not in text
    assert "<@all>" not in text
    assert r"a \& b" in text


def test_telegram_escapes_html_in_user_text() -> None:
    text = part_text("telegram", adapter_for("telegram").render(summary_message(hostile=True))[0])
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "a &amp; b" in text
    assert '<a href="https://jixiao.example/r/abc?x=1&amp;y=2">' in text


def test_slack_escapes_mentions_and_angle_brackets() -> None:
    text = part_text("slack", adapter_for("slack").render(summary_message(hostile=True))[0])
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<script>" not in text


def test_email_html_escapes_everything_user_supplied() -> None:
    part = adapter_for("email").render(summary_message(hostile=True))[0]
    assert "<script>" not in part.payload["html"]
    assert "&lt;script&gt;" in part.payload["html"]
    assert "<table" in part.payload["html"] and "<td" in part.payload["html"]


def test_a_table_cell_with_a_pipe_or_newline_stays_in_its_row() -> None:
    message = Message("t", (Table(("a", "b"), [("x|y", "line1\nline2")]),))
    content = part_text("wecom", adapter_for("wecom").render(message)[0])
    assert r"| x\|y | line1 line2 |" in content


def test_an_oversized_line_is_split_without_breaking_html_entities() -> None:
    message = Message("big", (Text("<&>" * 5000),))
    parts = adapter_for("telegram").render(message)
    assert len(parts) > 1
    body = ""
    for part in parts:
        assert len(part.payload["text"]) <= 4096
        chunk = part.payload["text"].split("\n\n", 1)[1]
        assert not re.search(r"&[a-z]*$", chunk), "no entity cut in half"
        body += html.unescape(chunk)
    assert body == "<&>" * 5000


def test_an_oversized_table_row_is_truncated_with_an_ellipsis_rather_than_split() -> None:
    segs = [Seg("x" * 500 + "\n", group=1, opener="H\n", closer="E\n")]
    (only,) = pack(segs, budget=100, cost=len)
    assert only.startswith("H\n") and only.endswith("…\nE\n") and len(only) <= 100


def test_cjk_cells_are_aligned_by_display_width_in_pre_tables() -> None:
    message = Message("t", (Table(("名称", "x"), [("产出", "1"), ("ab", "2")]),))
    (part,) = split_message(message, HtmlFlavor(), limit=4096, cost=len, overhead=lambda t: 0)
    lines = part.body.replace("<pre>", "").replace("</pre>", "").splitlines()
    assert lines[2] == "产出 | 1" and lines[3] == "ab   | 2"


def test_links_must_be_http_or_https() -> None:
    with pytest.raises(ValueError, match="http"):
        Link("javascript:alert(1)", "x")


def test_table_rows_must_match_the_header_count() -> None:
    with pytest.raises(ValueError, match="row 1 has 1 cells, expected 2"):
        Table(("a", "b"), [("only",)])


def test_rendered_parts_never_contain_credentials() -> None:
    for kind in SPLITTING_KINDS:
        for part in adapter_for(kind).render(summary_message()):
            assert SECRET not in json.dumps(part.payload, ensure_ascii=False)


SCORE_TABLE = Table(
    ("一级指标", "二级指标", "三级指标", "分值", "得分", "得分率"),
    [
        ("决策", "项目立项", "立项依据充分性", "4", "4.00", "100.00%"),
        ("", "", "立项程序规范性", "4", "3.50", "87.50%"),
        ("", "绩效目标", "绩效目标合理性", "3", "3.00", "100.00%"),
        ("过程", "资金管理", "资金到位率", "5", "5.00", "100.00%"),
    ],
    group=0,
    line="{2} {4}/{3}",
)


@pytest.mark.parametrize("kind", ["dingtalk", "feishu"])
def test_chat_apps_without_tables_get_the_score_table_as_a_person_would_write_it(kind: str) -> None:
    (part,) = adapter_for(kind).render(Message("汇总", (SCORE_TABLE,)))
    body = (
        part.payload["markdown"]["text"]
        if kind == "dingtalk"
        else part.payload["card"]["elements"][0]["content"]
    )
    lines = [ln for ln in body.split("\n") if ln and not ln.startswith("## ")]
    assert lines == [
        "三级指标 得分/分值",
        "**决策**",
        "- 立项依据充分性 4.00/4",
        "- 立项程序规范性 3.50/4",
        "- 绩效目标合理性 3.00/3",
        "**过程**",
        "- 资金到位率 5.00/5",
    ]
    assert "· " not in body and ": " not in body, "no blank-cell 'header: value' artifacts"


@pytest.mark.parametrize("kind", ["dingtalk", "feishu"])
def test_a_part_that_starts_inside_a_group_repeats_the_group_heading(kind: str) -> None:
    groups = ("决策", "过程", "产出", "效益")
    rows = [
        (level1 if i == 0 else "", "", f"{level1}指标{i:03d}" + "说明" * 20, "4", "3.00", "75.00%")
        for level1 in groups
        for i in range(150)
    ]
    table = Table(SCORE_TABLE.headers, rows, group=0, line="{2} {4}/{3}")
    parts = adapter_for(kind).render(Message("汇总", (table,)))
    assert len(parts) > 2
    seen = []
    for part in parts:
        body = (
            part.payload["markdown"]["text"]
            if kind == "dingtalk"
            else part.payload["card"]["elements"][0]["content"]
        )
        current = None  # the group heading this part has shown last
        for line in (ln for ln in body.split("\n") if ln.startswith(("**", "- "))):
            if line.startswith("**"):
                current = re.fullmatch(r"\*\*(.+)\*\*(（续）)?", line)[1]  # type: ignore[index]
            else:
                name = line[2:].split(" ")[0]
                assert current is not None and name.startswith(current), (part.index, line)
                seen.append(name)
    assert len(seen) == len(rows), "every row once"
    bodies = [part_text(kind, p) for p in parts]
    continued = sum(text.count("（续）") for text in bodies)
    assert 0 < continued <= len(parts) - 1, "only a part opening mid-group says 续"


def test_a_table_line_template_must_fit_its_columns() -> None:
    with pytest.raises(ValueError, match="does not fit 2 columns"):
        Table(("a", "b"), [("1", "2")], line="{0} {5}")
    with pytest.raises(ValueError, match="not a column index"):
        Table(("a", "b"), [("1", "2")], group=2, line="{0}")
