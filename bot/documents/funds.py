"""The 自评表's funds block (项目资金): 年初预算数 / 全年预算数 / 全年执行数 / 分值 / 执行率 / 得分.

The form's 执行率 is 全年执行数 / 全年预算数 (财预〔2020〕10号 附件1). The 分值 and 得分 are those
of the definition's 预算执行率 indicator (source ``funds.execution_rate``) as scored; when that
indicator uses the framework's other denominator (实际到位资金), the block says so in a note
together with both rates, so a reader can see why a score differs from the form's rate.

Sources: the amounts the definition declares (a 自评表 transcribed as printed, with its 其中 rows)
or, without them, the ledger (budget, arrivals, disbursements) — the score's funds statement
says which, and the block names it in its notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.documents.data import DocumentData
from scoring.money import wan_text
from scoring.rounding import fmt_pct, round_rate


@dataclass(frozen=True)
class FundsRow:
    """One row of the block; ``None`` is an amount the data does not give (printed blank)."""

    label: str
    initial_fen: int | None
    budget_fen: int | None
    executed_fen: int | None


@dataclass(frozen=True)
class FundsBlock:
    """The block as printed: the total row, the three 其中 rows, and the execution score."""

    total: FundsRow
    parts: tuple[FundsRow, FundsRow, FundsRow]
    weight: Decimal | None
    rate: Decimal | None
    score: Decimal | None
    source: str
    notes: tuple[str, ...]


def _rate(executed: int | None, budget: int | None) -> Decimal | None:
    if executed is None or not budget:
        return None
    return round_rate(Decimal(executed) / Decimal(budget))


#: The form's 其中 rows, and words that place a declared row on one of them.
PART_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("当年财政拨款", ("财政拨款", "财政资金", "本年")),
    ("上年结转资金", ("结转",)),
    ("其他资金", ("其他",)),
)


def _parts(data: DocumentData) -> tuple[tuple[FundsRow, FundsRow, FundsRow], list[str]]:
    """The three 其中 rows: declared rows placed by name; from the ledger, the whole amount is
    当年财政拨款 (the ledger records the project's fiscal money) and the others stay blank rather
    than an invented 0."""
    funds = data.table.funds
    budget, executed = data.budget_fen, data.disbursed_fen
    initial = funds.initial_fen if funds is not None and funds.initial_fen is not None else budget
    rows = {label: FundsRow(label, None, None, None) for label, _ in PART_ROWS}
    notes: list[str] = []
    declared = funds.declared.rows if funds is not None and funds.declared is not None else ()
    if declared:
        for row in declared:
            label = next((lab for lab, words in PART_ROWS if any(w in row.name for w in words)), None)
            if label is None or rows[label].budget_fen is not None:
                notes.append(f"申报的资金行“{row.name}”不属于表中三类来源，未列入")
                continue
            # the row keeps the name the table prints (本年财政拨款 as well as 当年财政拨款)
            rows[label] = FundsRow(row.name, row.initial_fen, row.annual_fen, row.executed_fen)
    else:
        rows["当年财政拨款"] = FundsRow("当年财政拨款", initial, budget, executed)
    a, b, c = (rows[label] for label, _ in PART_ROWS)
    return (a, b, c), notes


def funds_block(data: DocumentData) -> FundsBlock:
    """The funds block of ``data`` (see the module docstring for the rules)."""
    funds = data.table.funds
    budget, executed = data.budget_fen, data.disbursed_fen
    initial = funds.initial_fen if funds is not None and funds.initial_fen is not None else budget
    total = FundsRow("年度资金总额", initial, budget, executed)
    parts, notes = _parts(data)
    rate = _rate(executed, budget)
    result = data.result_for_source("funds.execution_rate")
    if data.funds_declared:
        head = "资金数据来源：项目申报的自评表金额（年初预算数、全年预算数、全年执行数）"
        if funds is not None and funds.ledger_executed_fen is not None:
            head += f"；资金台账另记支出{wan_text(funds.ledger_executed_fen)}万元，差异见预警"
    else:
        head = "资金数据来源：项目资金台账（预算、到位、拨付记录）"
        if funds is None or funds.initial_fen is None:
            head += "；年初预算数按全年预算数列示"
    notes.insert(0, head)
    denominator = funds.execution_denominator if funds is not None else data.definition.execution_denominator
    if result is not None and denominator == "arrived":
        arrived_rate = _rate(executed, data.arrived_fen)
        if arrived_rate is not None and arrived_rate != rate:
            notes.append(
                f"“{result.name}”指标按实际到位资金口径计分（执行数/到位数 {fmt_pct(arrived_rate)}），"
                f"本表执行率按全年预算数口径（{fmt_pct(rate) if rate is not None else '—'}）"
            )
        else:
            notes.append(f"“{result.name}”指标按实际到位资金口径计分，与本表全年预算数口径结果相同")
    return FundsBlock(
        total=total,
        parts=parts,
        weight=result.weight if result is not None else None,
        rate=rate,
        score=result.score if result is not None else None,
        source="declared" if data.funds_declared else "ledger",
        notes=tuple(notes),
    )
