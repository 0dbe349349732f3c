"""Domain errors raised by store functions. The bot's error middleware maps them to HTTP."""

from __future__ import annotations


class StoreError(Exception):
    """Base class; ``zh``/``en`` are user-facing messages, ``status`` the HTTP status."""

    status = 400

    def __init__(self, zh: str, en: str | None = None, *, where: str = "") -> None:
        self.zh = zh
        self.en = en or zh
        self.where = where
        super().__init__(f"{where + ': ' if where else ''}{zh} / {self.en}")


class NotFound(StoreError):
    status = 404


class Conflict(StoreError):
    status = 409


class Invalid(StoreError):
    status = 400


def no_such_project(code: str) -> NotFound:
    """The error for an unknown project code (the ORM and the stdlib reader raise the same)."""
    return NotFound(f"项目不存在：{code}", f"no such project: {code}", where="project")


def no_definition(code: str, version: int) -> NotFound:
    """The error for a project without a stored definition at ``version``."""
    return NotFound(f"项目 {code} 没有第 {version} 版定义", f"project {code} has no version {version}")
