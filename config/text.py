"""Text people type, cleaned ONCE on the way in: the one rule for control characters.

Every path that stores text a person wrote — the unit page's answers, vouchers and dispute
reasons (``store.answers``, ``store.linkpage``), and, by the same call, the API, the importer and
the definition loader — runs it through :func:`clean_text` before validating its length. Nothing
downstream then has to cope with control characters (openpyxl refuses them: one ``\\x08`` in an
answer used to make both XLSX exports answer 500).

What is removed: every Unicode ``Cc`` character (C0 ``U+0000``–``U+001F``, ``DEL`` and C1
``U+0080``–``U+009F``) except the line breaks and tabs multi-line text keeps, and the
noncharacters ``U+FFFE``/``U+FFFF`` (illegal in XML, so in XLSX/DOCX). ``\\r\\n`` and lone ``\\r``
become ``\\n``. In one-line text (vouchers, names, keys) tabs and line breaks become a space.
Everything else (Chinese, emoji, zero-width joiners) is kept as typed.

Use :func:`has_control` where refusing is better than cleaning (identifiers: a key with a hidden
character is a mistake to report, not to repair).
"""

from __future__ import annotations

import re

# C0 except \t \n \r, DEL, C1, and the two XML-illegal noncharacters.
_MULTILINE_DROP = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
_ONE_LINE_SPACE = re.compile("\r\n|[\t\n\r]")
_NEWLINES = re.compile("\r\n?")
_ANY_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ufffe\uffff]")
_ANY_CONTROL_BUT_LAYOUT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


def clean_text(text: str, *, multiline: bool = True) -> str:
    """``text`` without control characters (see the module docstring); not stripped.

    ``multiline`` keeps tabs and line breaks (as ``\\n``); otherwise each becomes one space.
    Pure and cheap for the common case: text without any control character is returned as is.
    """
    if text.isprintable():  # no Cc/Cf/Zl/Zp/... at all: nothing to do (fast path, C speed)
        return text
    if multiline:
        return _MULTILINE_DROP.sub("", _NEWLINES.sub("\n", text))
    return _MULTILINE_DROP.sub("", _ONE_LINE_SPACE.sub(" ", text))


def has_control(text: str, *, multiline: bool = False) -> bool:
    """True when ``text`` holds a character :func:`clean_text` would remove or change
    (tabs and line breaks count only when not ``multiline``)."""
    if text.isprintable():
        return False
    pattern = _ANY_CONTROL_BUT_LAYOUT if multiline else _ANY_CONTROL
    return pattern.search(text) is not None
