"""jixiao scoring: a pure engine for 项目支出绩效评价 indicator tables (财预〔2020〕10号).

No I/O, no database, no clock, nothing else of ours imported: inputs in, results out.
Entry points: :func:`score_table` (the whole table), :func:`fund_facts` and
:func:`satisfaction_fact` (actuals from plain inputs). Rounding rules live in
:mod:`scoring.rounding`; the typed contract in :mod:`scoring.model`.
"""

from scoring.engine import grade_for, score_indicator, score_table
from scoring.facts import FACT_SOURCES, fund_facts, satisfaction_fact, satisfaction_from_frame
from scoring.model import (
    DEFAULT_GRADE_BANDS,
    RULE_TYPES,
    Actual,
    Band,
    BinaryRule,
    ChecklistRule,
    CheckPoint,
    DeductionRule,
    GradeBand,
    IndicatorResult,
    IndicatorSpec,
    NotApplicableRule,
    Override,
    ProportionalRule,
    ReverseRule,
    Rule,
    SatisfactionRule,
    ScoreTable,
    ScoringPolicy,
    Subtotal,
    Target,
    TieredRule,
    TimelinessRule,
    Warning_,
)
from scoring.rounding import fmt_number, fmt_pct, fmt_points, fmt_wan, round_rate, round_score

__all__ = [
    "DEFAULT_GRADE_BANDS",
    "FACT_SOURCES",
    "RULE_TYPES",
    "Actual",
    "Band",
    "BinaryRule",
    "CheckPoint",
    "ChecklistRule",
    "DeductionRule",
    "GradeBand",
    "IndicatorResult",
    "IndicatorSpec",
    "NotApplicableRule",
    "Override",
    "ProportionalRule",
    "ReverseRule",
    "Rule",
    "SatisfactionRule",
    "ScoreTable",
    "ScoringPolicy",
    "Subtotal",
    "Target",
    "TieredRule",
    "TimelinessRule",
    "Warning_",
    "fmt_number",
    "fmt_pct",
    "fmt_points",
    "fmt_wan",
    "fund_facts",
    "grade_for",
    "round_rate",
    "round_score",
    "satisfaction_fact",
    "satisfaction_from_frame",
    "score_indicator",
    "score_table",
]
