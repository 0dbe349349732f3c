"""Render a scored table: JSON document, terminal table, Markdown, XLSX bytes.

Pure functions (no I/O): the caller prints or writes the result. Scores, rates and money are
decimal strings in JSON, never floats. Rates show as percentages (100%, 95.5%).
"""

from __future__ import annotations

import io
import unicodedata
from decimal import Decimal
from typing import Any

from scoring.model import FundsStatement, ScoreTable

HEADERS = ("一级指标", "二级指标", "三级指标", "分值", "得分", "得分率")


def _dec(x: Decimal | None) -> str | None:
    """Canonical decimal string without exponent (``Decimal('1E+2')`` → ``'100'``)."""
    if x is None:
        return None
    return format(x, "f")


def pct(rate: Decimal | None) -> str:
    """Fraction → percentage text with at most 2 decimals, trailing zeros dropped: 1 → 100%."""
    if rate is None:
        return "—"
    text = format((rate * 100).quantize(Decimal("0.01")), "f").rstrip("0").rstrip(".")
    return f"{text}%"


def points(x: Decimal | None) -> str:
    """Points as printed in tables: keep the policy's decimals (already applied)."""
    return "—" if x is None else format(x, "f")


def _fen(fen: int | None) -> str | None:
    """Fen as 元 text with 2 decimals (exact), or None."""
    if fen is None:
        return None
    return f"{'-' if fen < 0 else ''}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def funds_json(funds: FundsStatement | None) -> dict[str, Any] | None:
    """The funds block: which source was used, the figures (fen and 元), both sets when both exist."""
    if funds is None:
        return None
    declared = funds.declared
    return {
        "source": funds.source,
        "execution_denominator": funds.execution_denominator,
        "execution_rate": _dec(funds.execution_rate),
        **{
            f"{name}{suffix}": conv(value)
            for name, value in (
                ("budget", funds.budget_fen),
                ("initial", funds.initial_fen),
                ("annual", funds.annual_fen),
                ("executed", funds.executed_fen),
                ("arrived", funds.arrived_fen),
                ("ledger_arrived", funds.ledger_arrived_fen),
                ("ledger_executed", funds.ledger_executed_fen),
            )
            for suffix, conv in (("_fen", lambda v: v), ("", _fen))
        },
        "rows": [
            {
                "name": r.name,
                "initial_fen": r.initial_fen,
                "annual_fen": r.annual_fen,
                "executed_fen": r.executed_fen,
                "initial": _fen(r.initial_fen),
                "annual": _fen(r.annual_fen),
                "executed": _fen(r.executed_fen),
            }
            for r in (declared.rows if declared else ())
        ],
    }


def table_json(table: ScoreTable, project: dict[str, Any]) -> dict[str, Any]:
    """The JSON document of ``jixiao score --format json`` and the API."""
    return {
        "project": project,
        "total": _dec(table.total),
        "raw_total": _dec(table.raw_total),
        "grade": table.grade,
        "rescaled": table.rescaled,
        "total_weight": _dec(table.total_weight),
        "percentage": _dec(table.percentage),
        "published_total": _dec(table.published_total),
        "funds": funds_json(table.funds),
        "rounding": {"decimals": table.policy.decimals, "mode": table.policy.rounding},
        "indicators": [
            {
                "key": r.key,
                "level1": r.level1,
                "level2": r.level2,
                "name": r.name,
                "weight": _dec(r.weight),
                "score": _dec(r.score),
                "rate": _dec(r.rate),
                "completion": _dec(r.completion),
                "target": r.target,
                "actual": r.actual,
                "rule": r.rule,
                "applicable": r.applicable,
                "overridden": r.overridden,
                "override_reason": r.override_reason,
                "override_source": r.override_source,
                "transcribed": r.override_source == "published",
                "published_score": _dec(r.published_score),
                "rounding": {"decimals": r.decimals, "mode": r.rounding},
                "computed_score": _dec(r.computed_score),
                "explanation": r.explanation,
                "warnings": [w.message for w in r.warnings],
            }
            for r in table.indicators
        ],
        "subtotals": [
            {"level1": s.level1, "level2": s.level2, "weight": _dec(s.weight), "score": _dec(s.score)}
            for s in table.subtotals
        ],
        "warnings": [
            {"code": w.code, "indicator": w.indicator, "message": w.message} for w in table.warnings
        ],
    }


def rows(table: ScoreTable) -> list[tuple[str, str, str, str, str, str]]:
    """Table rows as published (一级 and 二级 shown on their first row only)."""
    out = []
    last1 = last2 = None
    for r in table.indicators:
        l1 = r.level1 if r.level1 != last1 else ""
        l2 = r.level2 if (r.level1, r.level2) != (last1, last2) else ""
        last1, last2 = r.level1, r.level2
        mark = "（照录）" if r.override_source == "published" else "（调整）" if r.overridden else ""
        name = r.name + mark + ("（不适用）" if not r.applicable else "")
        out.append((l1, l2, name, points(r.weight), points(r.score), pct(r.rate)))
    return out


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int, right: bool = False) -> str:
    gap = " " * (width - _width(text))
    return gap + text if right else text + gap


def text_table(table: ScoreTable, title: str = "") -> str:
    """A terminal table aligned for CJK double-width characters, with the total and grade."""
    body = rows(table)
    widths = [
        max(_width(h), *(_width(r[i]) for r in body)) if body else _width(h) for i, h in enumerate(HEADERS)
    ]
    numeric = {3, 4, 5}
    line = "  ".join("-" * w for w in widths)
    out = [title] if title else []
    out.append("  ".join(_pad(h, widths[i], i in numeric) for i, h in enumerate(HEADERS)))
    out.append(line)
    out.extend("  ".join(_pad(c, widths[i], i in numeric) for i, c in enumerate(r)) for r in body)
    out.append(line)
    weight = sum((r.weight for r in table.indicators if r.applicable), Decimal(0))
    out.append(f"合计 分值 {points(weight)}  得分 {points(table.total)}  等级 {table.grade}")
    if table.total_weight != 100:
        out.append(
            f"（本表满分 {points(table.total_weight)} 分，折合百分制 {points(table.percentage)} 分，按百分制评定等级）"
        )
    if table.published_total is not None:
        out.append(f"公布总分 {points(table.published_total)}")
    if table.rescaled:
        out.append(f"（含不适用指标，原始得分 {points(table.raw_total)} 已按百分制折算）")
    for w in table.warnings:
        out.append(f"⚠ {w.message}")
    return "\n".join(out)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: ScoreTable, title: str = "") -> str:
    """GitHub-flavoured Markdown: the table, then total, grade and explanations."""
    out = [f"## {_md_cell(title)}", ""] if title else []
    out.append("| " + " | ".join(HEADERS) + " | 说明 |")
    out.append("|" + "---|" * 3 + "---:|" * 3 + "---|")
    for r, res in zip(rows(table), table.indicators, strict=True):
        out.append("| " + " | ".join(_md_cell(c) for c in r) + f" | {_md_cell(res.explanation)} |")
    out.append("")
    out.append(f"**总分 {points(table.total)}，等级 {table.grade}**")
    if table.warnings:
        out.append("")
        out.extend(f"- ⚠ {_md_cell(w.message)}" for w in table.warnings)
    return "\n".join(out) + "\n"


def xlsx_bytes(table: ScoreTable, title: str = "") -> bytes:
    """An XLSX workbook: sheet 评分表 (numbers as numbers for spreadsheet use) and 说明.

    Excel stores numbers as binary floats; these cells are display values only — the exact
    figures are the JSON strings.
    """
    import pandas as pd

    records = [
        {
            "一级指标": r.level1,
            "二级指标": r.level2,
            "三级指标": r.name,
            "分值": float(r.weight),
            "得分": None if r.score is None else float(r.score),
            "得分率": None if r.rate is None else float(r.rate),
            "目标": r.target,
            "实际": r.actual,
            "说明": r.explanation,
            "人工调整": "照录" if r.override_source == "published" else "是" if r.overridden else "",
            "调整理由": r.override_reason,
        }
        for r in table.indicators
    ]
    records.append(
        {
            "一级指标": "合计",
            "分值": float(sum((r.weight for r in table.indicators), Decimal(0))),
            "得分": float(table.total),
            "说明": f"等级 {table.grade}",
        }
    )
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as writer:
        pd.DataFrame.from_records(records).to_excel(writer, sheet_name="评分表", index=False)
        notes = [{"项目": title, "总分": str(table.total), "等级": table.grade}]
        notes += [{"项目": w.message} for w in table.warnings]
        pd.DataFrame.from_records(notes).to_excel(writer, sheet_name="说明", index=False)
        sheet = writer.sheets["评分表"]
        for col, width in zip("ABCDEFGHIJK", (10, 12, 30, 6, 6, 8, 14, 14, 60, 8, 30), strict=True):
            sheet.column_dimensions[col].width = width
        for cell in sheet["F"][1:]:
            cell.number_format = "0.00%"
    return buf.getvalue()
