"""Typed application keys: everything the handlers share lives under one of these."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import aiohttp
import jinja2
from aiohttp import web

from config.settings import Settings
from store.db import SessionMaker

Clock = Callable[[], datetime]
#: "run now" hooks wired in by the composition root (e.g. recompute, summarise), by name.
RunNow = dict[str, Callable[..., Awaitable[Any]]]

SETTINGS = web.AppKey("settings", Settings)
SESSIONMAKER = web.AppKey("sessionmaker", SessionMaker)
#: sessions for pure reads (SQLite: deferred BEGIN, read-only, concurrent with the writer; see
#: store.db.create_engines). Same as SESSIONMAKER unless the composition root passes one.
READ_SESSIONMAKER = web.AppKey("read_sessionmaker", SessionMaker)
CLOCK = web.AppKey("clock", Clock)
CHANNELS = web.AppKey("channels", dict)
HTTP = web.AppKey("http", aiohttp.ClientSession)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
RUN_NOW = web.AppKey("run_now", dict)
SECRET = web.AppKey("secret", bytes)
