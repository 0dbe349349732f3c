"""The command parser: every documented form, other bots' commands, chatter, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.inbound.commands import ALIASES, COMMANDS, Command, normalise, parse

BOT = ("jixiao_bot",)

FORMS = [
    "/{en}",
    "/{en}@jixiao_bot",
    "/{en}@JIXIAO_BOT",
    "@jixiao_bot {zh}",
    "@jixiao_bot /{en}",
    "@绩效机器人 {zh}",
    "<@U0BOT> {zh}",
    "<@U0BOT|jixiao> /{en}",
    "@_user_1 {zh}",
    "＠绩效机器人　{zh}",  # full-width @ and ideographic space (Chinese IMEs)
    "／{en}",
    "  {zh}  ",
    "{zh}",
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_documented_form_of_each_command_parses_to_it(form: str, name: str) -> None:
    zh, en, _ = COMMANDS[name]
    text = form.format(zh=zh, en=en.lstrip("/"))
    assert parse(text, bot_names=BOT) == Command(name)


def test_a_command_addressed_to_another_bot_is_left_to_it() -> None:
    assert parse("/score@other_bot", bot_names=BOT) is None
    assert parse("/score@other_bot", bot_names=()) == Command("score")  # username unknown: accept


def test_an_unknown_word_addressed_to_the_bot_gets_the_help() -> None:
    assert parse("@jixiao_bot 今天天气", bot_names=BOT) == Command("help", unknown="今天天气")
    assert parse("/weather", bot_names=BOT) == Command("help", unknown="/weather")
    assert parse("@jixiao_bot", bot_names=BOT) == Command("help")
    assert parse("随便说说", mentioned=True) == Command("help", unknown="随便说说")


def test_chatter_not_addressed_to_the_bot_is_ignored() -> None:
    assert parse("大家好，今天开会", bot_names=BOT) is None
    assert parse("", bot_names=BOT) is None


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_the_parser_never_raises_and_answers_only_known_commands(text: str) -> None:
    got = parse(text, bot_names=BOT, mentioned=False)
    assert got is None or got.name in COMMANDS
    got = parse(text, bot_names=BOT, mentioned=True)
    assert got is not None and got.name in COMMANDS and len(got.unknown) <= 40


#: One word that stays one word after NFKC (NFKC turns e.g. "¨" into a space + combining mark).
_word = st.text(st.characters(blacklist_categories=("Z", "C")), min_size=1, max_size=12).filter(
    lambda w: not any(c.isspace() for c in normalise(w)) and not normalise(w).startswith(("@", "/", "<@"))
)


@settings(max_examples=300, deadline=None)
@given(
    alias=st.sampled_from(sorted(ALIASES)),
    mentions=st.lists(_word.map(lambda w: "@" + w), max_size=3),
    trailing=st.lists(_word, max_size=3),
    slash=st.booleans(),
)
def test_leading_mentions_a_slash_and_trailing_words_do_not_change_the_command(
    alias: str, mentions: list[str], trailing: list[str], slash: bool
) -> None:
    text = " ".join([*mentions, ("/" if slash else "") + alias, *trailing])
    assert parse(text, bot_names=()) == Command(ALIASES[alias])


@settings(max_examples=300, deadline=None)
@given(st.lists(_word.filter(lambda w: normalise(w).lower() not in ALIASES), min_size=1, max_size=4))
def test_unaddressed_text_that_does_not_start_with_a_command_word_is_ignored(words: list[str]) -> None:
    assert parse(" ".join(words), bot_names=BOT) is None
