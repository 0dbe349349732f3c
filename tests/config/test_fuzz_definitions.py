"""No traceback ever reaches an operator: mutated definitions either validate and then score, or
fail with located, bilingual problems.

A property test (hypothesis) takes the two example projects and applies 1–3 mutations each: any
value anywhere replaced by a hostile one (an array where a scalar is expected, a table, a 200 KB
string, control characters, NaN and huge numbers, negative numbers, dates, booleans, printed
comparators), keys deleted, list items duplicated; and, at file level, bytes that are not UTF-8,
BOMs, UTF-16, a CSV cell over the csv module's field limit. Each definition is validated and, when
valid, scored the way the service scores it (``scheduler.computed.build_actuals`` and
``scoring.engine.score_table``). The only accepted failure is ``DefinitionError`` whose problems
all have a location and both messages; a valid definition must score with every indicator in
0…分值. ``FUZZ_EXAMPLES`` examples per CI run (about 20 s on 2 vCPU).
"""

from __future__ import annotations

import copy
import datetime as dt
import tomllib
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.definition import ProjectDefinition
from config.loader import DefinitionError, load_definition, validate_definition_dict
from scheduler.computed import build_actuals
from scoring.engine import score_table
from store.facts import FactInputs
from tests.conftest import EXAMPLE_PROJECT, REPO

FUZZ_EXAMPLES = 1000
DEMO = REPO / "config" / "projects" / "zipingbiao-demo"
PRINTED = REPO / "config" / "projects"


def _base(path: Path) -> dict[str, Any]:
    with (path / "project.toml").open("rb") as handle:
        return tomllib.load(handle, parse_float=Decimal)


BASES = {"demo": _base(DEMO), "urumqi": _base(EXAMPLE_PROJECT)}

HOSTILE: list[Any] = [
    None,
    [],
    {},
    "",
    " ",
    ["a", "b"],
    [1, [2, [3]]],
    {"type": "reverse", "mode": "per_point", "per_point": -5},
    {"op": "≧", "value": "735 人次"},
    {"score": 99, "reason": ""},
    0,
    -5,
    -1,
    1,
    10**30,
    Decimal("NaN"),
    Decimal("Infinity"),
    Decimal("-0.0001"),
    Decimal("1e-30"),
    "NaN",
    "inf",
    "-5%",
    "150%",
    "1e999",
    "≧735 人次",
    "≦100 %",
    "═100 %",
    "＞0",
    "＜5%",
    "=达标",
    "较好",
    "程度较高",
    "floor",
    "published",
    "١٢٣",  # Arabic-Indic digits
    "１００％",
    "2023-02-30",
    "2023-W01",
    "20230301",
    dt.date(1999, 1, 1),
    dt.date(2100, 12, 31),
    dt.datetime(2023, 1, 1, 12, 0),
    True,
    False,
    "a\x00b\x08c\x1b",
    "\ufeff\u202e翻转",
    "长" * 200_000,
    "x" * 70,
    "91650100WRXK9TN79A",
    "units.csv",
    "../../etc/passwd",
    "none.csv",
]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into nested dicts and lists (the node itself excluded)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append((*prefix, i))
            out.extend(_paths(value, (*prefix, i)))
    return out


PATHS = {name: _paths(base) for name, base in BASES.items()}


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(BASES)))
    data = copy.deepcopy(BASES[name])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS[name]))
        parent: Any = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            last = path[-1]
            parent[last]
        except (KeyError, IndexError, TypeError):
            continue
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "duplicate", "wrap"]))
        if action == "replace":
            parent[last] = copy.deepcopy(draw(st.sampled_from(HOSTILE)))
        elif action == "delete":
            del parent[last]
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        else:
            parent[last] = [parent[last]]  # an array where a scalar (or table) is expected
    return name, data


def _facts(defn: ProjectDefinition) -> FactInputs:
    """What the store would aggregate for a freshly loaded definition (no answers yet beyond the
    imported responses)."""
    by_date: Counter[dt.date] = Counter()
    for d in defn.disbursements:
        by_date[d.date] += d.amount_fen
    arrivals: Counter[dt.date] = Counter()
    for a in defn.arrivals:
        arrivals[a.date] += a.amount_fen
    counts: Counter[str] = Counter()
    q = defn.questionnaire
    if q is not None:
        for r in defn.responses:
            answer = r.answers.get(q.satisfaction_question)
            if isinstance(answer, str):
                counts[answer] += 1
    return FactInputs(
        budget_fen=defn.budget_fen,
        arrivals=sorted(arrivals.items()),
        disbursed_by_date=sorted(by_date.items()),
        disbursed_fen=sum(by_date.values()),
        disbursement_count=len(defn.disbursements),
        confirmed_fen=0,
        confirmed_count=0,
        disputed_count=0,
        discrepancy_count=0,
        satisfaction_counts=dict(counts),
        responded_units=len({r.unit_key for r in defn.responses}),
        invited_units=max(len(defn.units), len({r.unit_key for r in defn.responses})),
        active_units=len(defn.units),
    )


def check(name: str, data: dict[str, Any]) -> str:
    """Validate and (when valid) score one mutated definition; returns ``valid``/``refused``.
    Anything else — any other exception, a problem without a location or a message, a score out
    of range — fails the test."""
    base_dir = DEMO if name == "demo" else EXAMPLE_PROJECT
    try:
        defn = validate_definition_dict(data, base_dir=base_dir, filename="project.toml")
    except DefinitionError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.location.startswith(("project.toml", "units.csv", "disbursements.csv")), p
            assert p.code and p.zh.strip() and p.en.strip(), p
            assert len(p.zh) < 2000 and len(p.en) < 2000, p.code  # a 200 KB value is never echoed
        return "refused"
    table = score_table(
        defn.indicator_specs(),
        build_actuals(defn, _facts(defn)),
        defn.policy,
        defn.overrides(),
        published_total=defn.published_total,
    )
    for row in table.indicators:
        if row.score is not None:
            assert Decimal(0) <= row.score <= row.weight, (row.key, row.score, row.weight)
    assert Decimal(0) <= table.total <= defn.policy.total_weight
    return "valid"


OUTCOMES: Counter[str] = Counter()


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_a_mutated_definition_validates_and_scores_or_is_refused_with_located_problems(
    case: tuple[str, dict[str, Any]],
) -> None:
    OUTCOMES[check(*case)] += 1


def test_the_unmutated_examples_are_valid() -> None:
    assert check("demo", copy.deepcopy(BASES["demo"])) == "valid"
    assert check("urumqi", copy.deepcopy(BASES["urumqi"])) == "valid"


# ---- files: bytes as they arrive


FILE_MUTATIONS = [
    lambda b: b.replace("项目".encode(), b"\xff\xfe\x80"),  # not UTF-8, not GB18030
    lambda b: b"\xef\xbb\xbf" + b,
    lambda b: b.decode("utf-8").encode("utf-16"),
    lambda b: b.decode("utf-8").encode("gb18030"),
    lambda b: b.decode("utf-8").encode("utf-16-le"),  # UTF-16 without its BOM
    lambda b: b[: len(b) // 2],  # cut short
    lambda b: b + b"\x00\x01\x02",
    lambda b: b.replace(b"\n", b"\r"),
    lambda b: b"PK\x03\x04" + b,
]


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    target=st.sampled_from(["project.toml", "units.csv", "disbursements.csv"]),
    mutation=st.sampled_from(range(len(FILE_MUTATIONS))),
    big_cell=st.booleans(),
)
def test_a_mutated_file_loads_or_is_refused_with_located_problems(
    tmp_path_factory: Any, target: str, mutation: int, big_cell: bool
) -> None:
    import shutil

    project = tmp_path_factory.mktemp("fuzz") / "p"
    shutil.copytree(EXAMPLE_PROJECT, project)
    path = project / target
    data = path.read_bytes()
    if big_cell and target.endswith(".csv"):
        lines = data.split(b"\n")
        lines[2] = lines[2] + b"," + b'"' + b"x" * 200_000 + b'"'
        data = b"\n".join(lines)
    path.write_bytes(FILE_MUTATIONS[mutation](data))
    try:
        load_definition(project)
    except DefinitionError as exc:
        for p in exc.problems:
            assert p.location and p.code and p.zh.strip() and p.en.strip(), p
