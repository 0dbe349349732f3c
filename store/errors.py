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
