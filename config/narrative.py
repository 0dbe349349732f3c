"""The narrative of a project: the text only people can write, for the 自评表 and the 评价报告.

It lives in its own file beside the definition (``config/projects/<code>/narrative.toml``) and is
stored with the project (``store.narrative``), so a changed sentence never makes a new definition
version, and the admin can edit it through the API without touching the indicator system.

File form (every field optional; texts are plain, paragraphs separated by blank lines)::

    department = "乌鲁木齐市市场监督管理局"      # 主管部门 (default: [project].department)
    implementer = "乌鲁木齐市市场监督管理局"     # 实施单位
    background = \"\"\"…\"\"\"                    # 项目概况：实施背景
    content = "…"                              # 主要实施内容
    progress = "…"                             # 当年完成情况
    funds = "…"                                # 资金来源与文件依据 (amounts are computed)
    goal_basis = "…"                           # 绩效目标的编制依据
    goal_expected = "…"                        # 年度总体目标：预期目标
    goal_actual = "…"                          # 年度总体目标：实际完成情况
    evaluation_purpose = "…"                   # 评价目的
    evaluation_process = "…"                   # 评价工作过程

    [[achievements]]   # 主要绩效       — each item: title (optional) and text
    [[experience]]     # 主要经验及做法
    [[problems]]       # 存在的问题及原因分析
    [[suggestions]]    # 有关建议
    [[other]]          # 其他需要说明的问题

    [indicators."decision.basis"]              # per indicator key of the definition
    evidence = "…"                             # 佐证与分析 (评价报告 §四)
    deviation = "…"                            # 偏差原因分析及改进措施 (自评表)

Validation reports every problem with its location and the loader's ``Problem`` shape
(``narrative.toml: indicators.x.evidence``, a stable code, Chinese and English), through the
loader's own pydantic-error decoder; indicator keys are checked against the definition.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from config.definition import custom_error
from config.loader import DefinitionError, Loc, Problem, _Reader
from config.tables import TableError, decode

__all__ = [
    "FILENAME",
    "MAX_TEXT",
    "NARRATIVE_PROBLEM_CODES",
    "IndicatorNote",
    "Narrative",
    "TextItem",
    "load_narrative",
    "parse_narrative_text",
    "validate_narrative_dict",
]

#: The file's name inside a project directory.
FILENAME = "narrative.toml"
#: Longest accepted text in one field (characters); a report section, not a book.
MAX_TEXT = 20_000
#: Most items in one list (经验做法, 问题, 建议 …).
MAX_ITEMS = 50

NARRATIVE_PROBLEM_CODES: tuple[str, ...] = (
    "toml_syntax", "json_syntax", "invalid_value", "unknown_field", "text_control_char", "text_too_long",
    "too_many_items", "narrative_unknown_indicator", "item_empty",
)  # fmt: skip

# Tabs and newlines are text; every other C0 control character (and DEL) is not, nor is a lone
# UTF-16 surrogate (JSON can carry one as an escape; no database or document can store it).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def _clean(text: str) -> str:
    """Newlines normalised to ``\\n``, outer blank space stripped; control characters and
    over-long texts refused (with the position of the first bad character)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    bad = _CONTROL.search(text)
    if bad is not None:
        raise custom_error(
            "text_control_char",
            f"文本第 {bad.start() + 1} 个字符 U+{ord(bad.group()):04X} 是控制字符或无效字符，请删除",
            f"character {bad.start() + 1} (U+{ord(bad.group()):04X}) is a control or invalid character: remove it",
        )
    if len(text) > MAX_TEXT:
        raise custom_error(
            "text_too_long",
            f"文本 {len(text)} 字，超过上限 {MAX_TEXT} 字",
            f"text of {len(text)} characters exceeds the limit of {MAX_TEXT}",
        )
    return text


Text = Annotated[str, AfterValidator(_clean)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextItem(_Model):
    """One numbered item of a list section (经验做法, 问题, 建议): an optional title and its text."""

    title: Text = ""
    text: Text = ""


def _items(items: tuple[TextItem, ...]) -> tuple[TextItem, ...]:
    if len(items) > MAX_ITEMS:
        raise custom_error(
            "too_many_items",
            f"最多 {MAX_ITEMS} 项（现有 {len(items)} 项）",
            f"at most {MAX_ITEMS} items ({len(items)} given)",
        )
    return items


Items = Annotated[tuple[TextItem, ...], AfterValidator(_items)]


class IndicatorNote(_Model):
    """What people write about one indicator: evidence (评价报告) and deviation analysis (自评表)."""

    evidence: Text = ""
    deviation: Text = ""


class Narrative(_Model):
    """The narrative fields of a project (all optional; empty means "not written yet").

    ``indicators`` is keyed by the definition's indicator keys."""

    department: Text = ""
    implementer: Text = ""
    background: Text = ""
    content: Text = ""
    progress: Text = ""
    funds: Text = ""
    goal_basis: Text = ""
    goal_expected: Text = ""
    goal_actual: Text = ""
    evaluation_purpose: Text = ""
    evaluation_process: Text = ""
    achievements: Items = ()
    experience: Items = ()
    problems: Items = ()
    suggestions: Items = ()
    other: Items = ()
    indicators: dict[str, IndicatorNote] = Field(default_factory=dict)

    def note(self, key: str) -> IndicatorNote:
        """The indicator's note (an empty one when nothing was written)."""
        return self.indicators.get(key) or IndicatorNote()


def validate_narrative_dict(
    data: Any, *, filename: str = FILENAME, indicator_keys: Iterable[str] | None = None
) -> Narrative:
    """Validate a narrative already parsed into a dict (the file form, or the API's JSON body).

    ``indicator_keys``: the definition's keys; a note for any other key is a problem (a note that
    lands on no indicator would silently vanish from the documents). Raises ``DefinitionError``
    listing every problem."""
    root = Loc(filename)
    reader = _Reader(None, filename)
    if not isinstance(data, Mapping):
        raise DefinitionError([Problem(filename, "invalid_value", "说明文本应为表（键值对）", "the narrative must be a table")])  # fmt: skip
    narrative = reader.validate(Narrative, data, root)
    if narrative is not None:
        for name in ("achievements", "experience", "problems", "suggestions", "other"):
            for i, item in enumerate(getattr(narrative, name)):
                if not item.title and not item.text:
                    reader.add(root / name / i, "item_empty", "该项没有标题也没有正文", "this item has neither title nor text")  # fmt: skip
    notes = data.get("indicators")
    if indicator_keys is not None and isinstance(notes, Mapping):
        known = set(indicator_keys)
        for key in notes:
            if key not in known:
                reader.add(root / "indicators" / str(key), "narrative_unknown_indicator",
                           f"项目定义中没有指标 {key}", f"the definition has no indicator {key}")  # fmt: skip
    if reader.problems:
        raise DefinitionError(reader.problems)
    assert narrative is not None
    return narrative


def parse_narrative_text(
    text: str, *, filename: str = FILENAME, indicator_keys: Iterable[str] | None = None
) -> Narrative:
    """Parse narrative text: JSON when it starts with ``{``, TOML otherwise."""
    try:
        if text.lstrip().startswith("{"):
            data = json.loads(text, parse_float=Decimal)
        else:
            data = tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise DefinitionError(
            [Problem(f"{filename}:{exc.lineno}", "json_syntax", f"JSON 语法错误：{exc.msg}", f"JSON syntax error: {exc.msg}")]
        ) from None  # fmt: skip
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError(
            [Problem(filename, "toml_syntax", f"TOML 语法错误：{exc}", f"TOML syntax error: {exc}")]
        ) from None
    return validate_narrative_dict(data, filename=filename, indicator_keys=indicator_keys)


def load_narrative(path: Path | str, *, indicator_keys: Iterable[str] | None = None) -> Narrative | None:
    """The ``narrative.toml`` of a project directory (or beside a ``project.toml``), or None when
    the project has none. Raises ``DefinitionError`` listing every problem."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    file = directory / FILENAME
    if not file.is_file():
        return None
    try:
        # the one decoder for definition files: UTF-8 ± BOM, UTF-16 with BOM, GB18030/GBK
        text = decode(file.read_bytes(), name=FILENAME).text
    except TableError as exc:
        first = exc.problems[0]
        raise DefinitionError([Problem(FILENAME, first.code, first.zh, first.en)]) from None
    return parse_narrative_text(text, filename=FILENAME, indicator_keys=indicator_keys)
