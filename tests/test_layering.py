"""Dependencies point one way (DESIGN.md): checked on the import statements of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OURS = ("config", "scoring", "store", "bot", "scheduler", "cli")
#: package → packages of ours it may import.
ALLOWED = {
    "scoring": set(),
    "config": {"scoring"},
    "store": {"config", "scoring"},
    "bot": {"config", "scoring", "store"},
    "scheduler": {"config", "scoring", "store", "bot"},
    "cli": set(OURS),
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(OURS)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_the_design_allows(package: str) -> None:
    bad = {}
    for path in (REPO / package).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        extra = imports_of(path) - ALLOWED[package] - {package}
        if extra:
            bad[str(path.relative_to(REPO))] = sorted(extra)
    assert bad == {}, f"forbidden imports: {bad}"


def test_scoring_does_no_io() -> None:
    """The engine stays pure: no database, network, clock or filesystem modules."""
    forbidden = {"sqlalchemy", "sqlmodel", "aiohttp", "asyncio", "os", "socket", "time"}
    for path in (REPO / "scoring").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {
            n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
        }
        assert not names & forbidden, f"{path.name} imports {names & forbidden}"
