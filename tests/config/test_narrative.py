"""narrative.toml: every problem located and bilingual, like the definition loader's."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.loader import DefinitionError, load_definition
from config.narrative import MAX_TEXT, load_narrative, parse_narrative_text, validate_narrative_dict
from tests.conftest import EXAMPLE_PROJECT


def test_the_example_projects_narrative_is_valid_against_its_definition() -> None:
    defn = load_definition(EXAMPLE_PROJECT)
    narrative = load_narrative(EXAMPLE_PROJECT, indicator_keys=[i.key for i in defn.indicators])
    assert narrative is not None
    assert narrative.department == "乌鲁木齐市市场监督管理局"
    assert [i.title for i in narrative.experience] == ["政策创新", "项目管理", "运营模式"]
    assert narrative.note("benefit.ip-growth").deviation.startswith("增长率为全市口径")
    assert narrative.note("no.such.key").evidence == ""


def test_a_project_without_narrative_file_has_none(tmp_path: Path) -> None:
    assert load_narrative(tmp_path) is None


def test_every_problem_is_reported_at_once_with_its_location() -> None:
    data = {
        "background": "前文\x01后文",
        "colour": "red",
        "experience": [{}, {"title": "好", "text": "x" * (MAX_TEXT + 1)}],
        "indicators": {"decision.basis": {"evidence": 3}, "ghost": {"evidence": "无此指标"}},
    }
    with pytest.raises(DefinitionError) as err:
        validate_narrative_dict(data, indicator_keys=["decision.basis"])
    got = {(p.location, p.code) for p in err.value.problems}
    assert got == {
        ("narrative.toml: background", "text_control_char"),
        ("narrative.toml: colour", "unknown_field"),
        ("narrative.toml: experience[1].text", "text_too_long"),
        ("narrative.toml: indicators.decision.basis.evidence", "invalid_value"),
        ("narrative.toml: indicators.ghost", "narrative_unknown_indicator"),
    }
    control = next(p for p in err.value.problems if p.code == "text_control_char")
    assert "第 3 个字符" in control.zh and "U+0001" in control.en


def test_an_empty_item_is_refused() -> None:
    with pytest.raises(DefinitionError) as err:
        validate_narrative_dict({"problems": [{"title": "", "text": "  "}]})
    assert [(p.location, p.code) for p in err.value.problems] == [
        ("narrative.toml: problems[0]", "item_empty")
    ]


def test_windows_line_endings_and_a_bom_are_read_as_text(tmp_path: Path) -> None:
    (tmp_path / "narrative.toml").write_bytes(
        '\ufeffbackground = """\r\n第一段\r\n第二段\r\n"""\r\n'.encode()
    )
    narrative = load_narrative(tmp_path)
    assert narrative is not None and narrative.background == "第一段\n第二段"


def test_a_file_saved_by_chinese_windows_in_gbk_is_read_like_the_definition(tmp_path: Path) -> None:
    (tmp_path / "narrative.toml").write_bytes('background = "项目背景"'.encode("gb18030"))
    narrative = load_narrative(tmp_path)
    assert narrative is not None and narrative.background == "项目背景"


def test_a_binary_file_gets_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "narrative.toml").write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(DefinitionError) as err:
        load_narrative(tmp_path)
    assert err.value.problems[0].code == "encoding" and "narrative.toml" in str(err.value)


def test_toml_syntax_errors_name_the_file() -> None:
    with pytest.raises(DefinitionError) as err:
        parse_narrative_text('background = "unterminated')
    assert err.value.codes() == ["toml_syntax"] and str(err.value).startswith("narrative.toml")


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["background", "problems", "indicators", "x"]), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=8)))  # fmt: skip
def test_any_json_shape_is_either_a_narrative_or_located_problems(data: dict) -> None:
    try:
        validate_narrative_dict(data, indicator_keys=[])
    except DefinitionError as exc:
        assert exc.problems and all(
            p.location.startswith("narrative.toml") and p.zh and p.en for p in exc.problems
        )
