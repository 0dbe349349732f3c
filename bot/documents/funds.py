"""The 自评表's funds block (项目资金): 年初预算数 / 全年预算数 / 全年执行数 / 分值 / 执行率 / 得分.

The form's 执行率 is 全年执行数 / 全年预算数 (财预〔2020〕10号 附件1). The 分值 and 得分 are those
of the definition's 预算执行率 indicator (source ``funds.execution_rate``) as scored; when that
indicator uses the framework's other denominator (实际到位资金), the block says so in a note
together with both rates, so a reader can see why a score differs from the form's rate.

Sources: the ledger (budget, arrivals, disbursements) — the only source until a definition can
declare the form's amounts directly. The block always names its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.documents.data import DocumentData
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


def funds_block(data: DocumentData) -> FundsBlock:
    """The funds block of ``data`` (see the module docstring for the rules)."""
    budget, executed = data.budget_fen, data.disbursed_fen
    total = FundsRow("年度资金总额", budget, budget, executed)
    # The ledger holds the project's fiscal money: the whole amount is 当年财政拨款; the form's
    # other sources are not recorded, so they stay blank rather than an invented 0.
    parts = (
        FundsRow("当年财政拨款", budget, budget, executed),
        FundsRow("上年结转资金", None, None, None),
        FundsRow("其他资金", None, None, None),
    )
    rate = _rate(executed, budget)
    result = data.result_for_source("funds.execution_rate")
    notes = ["资金数据来源：项目资金台账（预算、到位、拨付记录）；年初预算数按全年预算数列示"]
    if result is not None and data.definition.execution_denominator == "arrived":
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
        source="ledger",
        notes=tuple(notes),
    )
