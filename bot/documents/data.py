"""Everything the documents say, gathered once: the stored score result, the definition it was
computed with, the narrative, and the fund ledger's details.

The score numbers come from the project's latest snapshot — the very result the summaries and
the report page show — rebuilt as a ``ScoreTable`` (``score_table_from_json``), never recomputed
here. Money stays integer fen until a renderer prints it through ``scoring.money``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, get_args

from sqlalchemy.ext.asyncio import AsyncSession

from config.definition import IndicatorDef, ProjectDefinition
from config.narrative import IndicatorNote, Narrative
from scoring.model import (
    DeclaredFunds,
    FundsRow,
    FundsStatement,
    IndicatorResult,
    ScoreTable,
    ScoringPolicy,
    Subtotal,
    Warning_,
)
from store.errors import NotFound
from store.facts import FundsDetail, load_funds_detail
from store.models import Project, ScoreSnapshot
from store.narrative import current_narrative
from store.projects import get_definition, get_project
from store.scores import latest_snapshot

_WARNING_CODES = set(get_args(Warning_.model_fields["code"].annotation))


def score_table_from_json(doc: dict[str, Any]) -> ScoreTable:
    """Rebuild a ``scoring.model.ScoreTable`` from a snapshot's JSON so every output shows exactly
    the stored numbers. Warning codes this build does not know are kept as ``missing_actual``
    (their message is what people read)."""

    def dec(v: Any) -> Decimal | None:
        return None if v is None else Decimal(str(v))

    def warning(w: dict[str, Any]) -> Warning_:
        code = w.get("code")
        return Warning_(
            code=code if code in _WARNING_CODES else "missing_actual",  # type: ignore[arg-type]
            message=w["message"],
            indicator=w.get("indicator"),
        )

    warnings = tuple(warning(w) for w in doc.get("warnings", []))
    rounding = doc.get("rounding") or {}
    percentage = doc.get("percentage")
    published = doc.get("published_total")
    return ScoreTable(
        total_weight=Decimal(str(doc.get("total_weight") or 100)),
        percentage=None if percentage is None else Decimal(str(percentage)),
        published_total=None if published is None else Decimal(str(published)),
        funds=funds_from_json(doc.get("funds")),
        total=Decimal(str(doc["total"])),
        raw_total=Decimal(str(doc.get("raw_total", doc["total"]))),
        grade=doc["grade"],
        rescaled=bool(doc.get("rescaled")),
        indicators=tuple(
            IndicatorResult(
                key=r["key"],
                level1=r["level1"],
                level2=r["level2"],
                name=r["name"],
                weight=Decimal(str(r["weight"])),
                score=dec(r.get("score")),
                rate=dec(r.get("rate")),
                completion=dec(r.get("completion")),
                actual=r.get("actual", ""),
                target=r.get("target", ""),
                rule=r.get("rule", ""),
                explanation=r.get("explanation", ""),
                applicable=r.get("applicable", True),
                overridden=r.get("overridden", False),
                override_reason=r.get("override_reason", ""),
                override_source=r.get("override_source", ""),
                published_score=dec(r.get("published_score")),
                computed_score=dec(r.get("computed_score")),
                warnings=tuple(w for w in warnings if w.indicator == r["key"]),
            )
            for r in doc.get("indicators", [])
        ),
        subtotals=tuple(
            Subtotal(
                level1=s["level1"],
                level2=s.get("level2"),
                weight=Decimal(str(s["weight"])),
                score=Decimal(str(s["score"])),
            )
            for s in doc.get("subtotals", [])
        ),
        warnings=warnings,
        policy=ScoringPolicy(decimals=rounding.get("decimals", 2), rounding=rounding.get("mode", "half_up")),
    )


def funds_from_json(doc: dict[str, Any] | None) -> FundsStatement | None:
    """The snapshot's funds block (``scoring.report.funds_json``) back as a ``FundsStatement``."""
    if not doc:
        return None

    def fen(name: str) -> int | None:
        value = doc.get(f"{name}_fen")
        return None if value is None else int(value)

    rows = tuple(
        FundsRow(
            name=r["name"],
            initial_fen=r.get("initial_fen"),
            annual_fen=r.get("annual_fen"),
            executed_fen=r.get("executed_fen"),
        )
        for r in doc.get("rows") or ()
    )
    declared = None
    if doc.get("source") == "declared":
        declared = DeclaredFunds(
            initial_fen=fen("initial"),
            annual_fen=fen("annual"),
            executed_fen=fen("executed"),
            arrived_fen=fen("arrived"),
            rows=rows,
        )
    rate = doc.get("execution_rate")
    return FundsStatement(
        source=doc.get("source", "ledger"),
        budget_fen=fen("budget") or 0,
        initial_fen=fen("initial"),
        annual_fen=fen("annual") or 0,
        executed_fen=fen("executed") or 0,
        arrived_fen=fen("arrived") or 0,
        execution_denominator=doc.get("execution_denominator", "arrived"),
        execution_rate=None if rate is None else Decimal(str(rate)),
        declared=declared,
        ledger_arrived_fen=fen("ledger_arrived"),
        ledger_executed_fen=fen("ledger_executed"),
    )


@dataclass(frozen=True)
class Survey:
    """The questionnaire as scored: counts per level (best first), who was asked and answered.

    发放 = units invited, 回收 = units that answered, 有效 = answers on the scale."""

    scale: tuple[str, ...]
    satisfied: tuple[str, ...]
    counts: dict[str, int]
    invited: int
    responded: int
    method: str

    @property
    def valid(self) -> int:
        return sum(self.counts.get(level, 0) for level in self.scale)


@dataclass(frozen=True)
class DocumentData:
    """One project's documents' inputs. Money in fen; scores as stored (already rounded)."""

    definition: ProjectDefinition
    definition_version: int
    table: ScoreTable
    computed_at: datetime
    narrative: Narrative
    funds: FundsDetail
    facts: dict[str, Any]
    survey: Survey | None

    # ---- who and what

    @property
    def name(self) -> str:
        return self.definition.project.name

    @property
    def year(self) -> int:
        return self.definition.project.year

    @property
    def period(self) -> tuple[date, date]:
        return self.definition.project.period_start, self.definition.project.period_end

    @property
    def department(self) -> str:
        """主管部门: the narrative's, else the definition's ``[project].department``."""
        return self.narrative.department or self.definition.project.department

    @property
    def implementer(self) -> str:
        """实施单位: the narrative's, else the 主管部门 (a department implementing its own project)."""
        return self.narrative.implementer or self.department

    # ---- money (fen) as scored: the score's funds statement (declared or ledger) when it has one

    @property
    def budget_fen(self) -> int:
        """全年预算数."""
        if self.table.funds is not None:
            return self.table.funds.annual_fen
        return int(self.facts.get("budget_fen", self.definition.budget_fen))

    @property
    def disbursed_fen(self) -> int:
        """全年执行数."""
        if self.table.funds is not None:
            return self.table.funds.executed_fen
        return int(self.facts.get("disbursed_fen", self.funds.disbursed_fen))

    @property
    def arrived_fen(self) -> int:
        """到位数."""
        if self.table.funds is not None:
            return self.table.funds.arrived_fen
        return int(self.facts.get("arrived_fen", self.funds.arrived_fen))

    @property
    def funds_declared(self) -> bool:
        """True when the amounts are the project's declared ones (a 自评表 transcribed as printed)."""
        return self.table.funds is not None and self.table.funds.source == "declared"

    # ---- indicators

    def indicator_def(self, key: str) -> IndicatorDef | None:
        return next((i for i in self.definition.indicators if i.key == key), None)

    def note(self, key: str) -> IndicatorNote:
        return self.narrative.note(key)

    def result_for_source(self, source: str) -> IndicatorResult | None:
        """The first applicable indicator whose actual comes from ``source`` (``funds.execution_rate``)."""
        for r in self.table.indicators:
            spec = self.indicator_def(r.key)
            if spec is not None and spec.source == source and r.applicable:
                return r
        return None


def build_document_data(
    definition: ProjectDefinition,
    snapshot: ScoreSnapshot,
    narrative: Narrative,
    funds: FundsDetail,
) -> DocumentData:
    """Assemble the inputs from loaded parts (pure; the async loader below feeds it)."""
    doc = dict(snapshot.table or {})
    facts = dict(doc.get("facts") or {})
    q = definition.questionnaire
    survey = None
    if q is not None:
        survey = Survey(
            scale=tuple(q.scale),
            satisfied=tuple(q.satisfied),
            counts={str(k): int(v) for k, v in (facts.get("satisfaction_counts") or {}).items()},
            invited=int(facts.get("invited_units", 0)),
            responded=int(facts.get("responded_units", 0)),
            method=q.method,
        )
    return DocumentData(
        definition=definition,
        definition_version=snapshot.definition_version,
        table=score_table_from_json(doc),
        computed_at=snapshot.computed_at,
        narrative=narrative,
        funds=funds,
        facts=facts,
        survey=survey,
    )


async def load_document_data(session: AsyncSession, code: str) -> DocumentData:
    """The documents' inputs for project ``code`` from its latest snapshot. Raises ``NotFound``
    when the project does not exist or has not been scored yet."""
    project: Project = await get_project(session, code)
    snapshot = await latest_snapshot(session, project.id)  # type: ignore[arg-type]
    if snapshot is None:
        raise NotFound(
            f"项目 {code} 尚未计算评分，无法生成文档（请先运行 jixiao score {code} 或 POST scores/recompute）",
            f"project {code} has no score yet, so no document can be made (run jixiao score {code} first)",
            where="scores",
        )
    definition = await get_definition(session, project, snapshot.definition_version)
    narrative = (await current_narrative(session, project)).narrative
    funds = await load_funds_detail(session, project)
    return build_document_data(definition, snapshot, narrative, funds)
