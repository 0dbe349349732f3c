"""A small valid definition in file form (元, %, friendly targets) that each test breaks once."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

VALID_USCC = "91110000600037341L"  # python-stdnum's documented example


def _base() -> dict[str, Any]:
    return {
        "project": {
            "code": "t-2023",
            "name": "测试项目",
            "year": 2023,
            "period": {"start": date(2023, 1, 1), "end": date(2023, 12, 31)},
        },
        "budget": {"amount": "1000.00"},
        "arrivals": [{"date": date(2023, 2, 1), "amount": "1000.00"}],
        "units": [
            {
                "key": "a",
                "name": "甲单位",
                "uscc": VALID_USCC,
                "channel": {"kind": "email", "address": "a@example.com"},
            },
            {
                "key": "b",
                "name": "乙单位",
                "channel": {
                    "kind": "dingtalk",
                    "address": "ding_b",
                    "secret_env": "JIXIAO_SECRET_DINGTALK_1",
                },
            },
        ],
        "disbursements": [
            {"unit": "a", "batch": "1", "amount": "600.00", "date": date(2023, 3, 1)},
            {"unit": "b", "batch": "1", "amount": 400, "date": date(2023, 3, 1)},
        ],
        "levels": [
            {"name": "产出", "weight": 60, "sub": {"数量": 60}},
            {"name": "满意度", "weight": 40, "sub": {"满意度": 40}},
        ],
        "indicators": [
            {
                "key": "q1",
                "level1": "产出",
                "level2": "数量",
                "name": "甲",
                "weight": 30,
                "rule": "proportional",
                "target": "≥7个",
                "actual": 7,
            },
            {
                "key": "q2",
                "level1": "产出",
                "level2": "数量",
                "name": "乙",
                "weight": 30,
                "rule": "checklist",
                "points": [{"text": "要点", "met": True, "evidence": "佐证"}],
            },
            {
                "key": "s",
                "level1": "满意度",
                "level2": "满意度",
                "name": "满意度",
                "weight": 40,
                "rule": "satisfaction",
                "target": "≥90%",
                "source": "survey.satisfaction",
            },
        ],
        "questionnaire": {
            "title": "问卷",
            "satisfaction_question": "overall",
            "questions": [
                {"key": "overall", "text": "总体满意吗", "kind": "scale"},
                {
                    "key": "kind",
                    "text": "单位类型",
                    "kind": "single",
                    "options": ["企业", "高校"],
                    "required": False,
                },
            ],
        },
        "responses": [{"unit": "a", "answers": {"overall": "非常满意"}}],
    }


@pytest.fixture
def base() -> dict[str, Any]:
    """A fresh deep copy of the valid definition."""
    return copy.deepcopy(_base())
