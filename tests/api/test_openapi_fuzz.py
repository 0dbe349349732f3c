"""Schemathesis fuzzes every operation of ``/api/openapi.json`` against the real app served on
127.0.0.1 (real SQLite file — and PostgreSQL when ``JIXIAO_TEST_PG_URL`` is set — with the example
project loaded, plus units whose names are hostile text) using a valid admin token, with ALL of
schemathesis' checks: no 5xx, every response as documented (status, content type, headers,
body schema), documented-valid input accepted and invalid input refused, ``Allow`` headers true,
authentication not ignored. Generated strings draw from a dictionary of hostile text (control
characters, very long strings, RTL, SQL- and HTML-looking text) a quarter of the time.
Deterministic (derandomized) with a fixed example budget per operation.

The app runs on its own event loop in a thread because schemathesis drives it with blocking
``requests`` calls from the (synchronous) test.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import max_response_time, negative_data_rejection, positive_data_acceptance
from schemathesis.config import SchemathesisConfig

from config.settings import Settings
from tests.conftest import BACKENDS, EXAMPLE_PROJECT, create_pg_database, drop_pg_database

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _as_bytes(ctx: Any, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


# Raw-body media types of the import and definition endpoints.
for media in ("text/csv", "application/toml", XLSX):
    schemathesis.serializer(media)(_as_bytes)


#: Hostile text: what real users paste and attackers try. Schemathesis uses each entry where it
#: fits the schema (positive cases) and where it does not (negative cases).
HOSTILE = [
    "<script>alert(1)</script>",
    "'; DROP TABLE unit; --",
    '" OR 1=1 --',
    "Robert'); DELETE FROM link;--",
    "\u202e\u0644\u0627 \u05e9\u05dc\u05d5\u05dd evil\u202c",
    "\u200f\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "tab\tnew\nline\r\n",
    "bell\x07nul\x00esc\x1b[31m",
    "\x7f\x0b\x0c",
    "\ufeffBOM",
    "\U0001f600 emoji \U0001f4a9",
    "单位" * 150,
    "x" * 5000,
    "../../etc/passwd",
    "%00%0d%0a",
    "${jndi:ldap://127.0.0.1/a}",
    "{{7*7}}",
    '=HYPERLINK("http://127.0.0.1")',
    "",
    " ",
]

#: Example budget per operation (and per generation phase): 12 made this one test ~9 of the
#: suite's 26 minutes on a quiet 2-core machine; 8 keeps every operation and phase exercised.
MAX_EXAMPLES = 8

#: Operations whose body is a document (CSV/XLSX import, a project definition): JSON Schema can
#: say "a file", not its columns, ledger invariants or indicator tree, which the loader checks
#: and reports row by row. For them "schema-valid data must be accepted" cannot hold; every
#: other check (no 5xx, documented statuses/headers/bodies, invalid data refused) still runs.
DOCUMENT_BODIES = {
    ("POST", "/api/projects/{code}/units/import"),
    ("POST", "/api/projects/{code}/disbursements/import"),
    ("POST", "/api/projects/validate"),
    ("POST", "/api/projects/load"),
}


@dataclass
class LiveApi:
    url: str
    token: str


def _serve(db_url: str, data_dir: Path, started: threading.Event, box: dict[str, Any]) -> None:
    """Thread body: build the schema, load the example, create a token, serve until stopped."""

    async def main() -> None:
        from bot.app import create_app
        from config.loader import load_definition
        from store.db import create_engine, make_sessionmaker, transaction
        from store.models import metadata
        from store.projects import get_project, load_project
        from store.tokens import create_token
        from store.units import UnitFields, create_unit

        engine = create_engine(db_url)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        sm = make_sessionmaker(engine)
        now = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
        async with transaction(sm) as session:
            await load_project(session, load_definition(EXAMPLE_PROJECT), now=now)
            _, box["token"] = await create_token(
                session, name="fuzz", role="admin", now=now, all_projects=True
            )
            project = await get_project(session, "urumqi-ip-2023")
            assert project.id is not None
            for i, name in enumerate(h for h in HOSTILE if h.strip()):
                # Hostile text stored as data (names are one line, so control characters go).
                clean = "".join(c if c.isprintable() else "?" for c in name)[:200]
                await create_unit(session, project.id, UnitFields(f"hostile-{i}", clean), now=now)
        settings_ = Settings(data_dir=data_dir, secret_key="fuzz-secret-0123456789abcdef", load_example=False)  # type: ignore[arg-type]
        from scheduler.recompute import recompute

        async def recompute_now(code: str, *, now: datetime, trigger: str = "api") -> Any:
            return await recompute(sm, code, now=now, trigger=trigger)

        app = create_app(
            settings_,
            sessionmaker=sm,
            clock=lambda: now,
            channels={},
            run_now={"recompute": recompute_now},
            start_workers=False,
        )
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        box["url"] = f"http://127.0.0.1:{port}"
        stop = asyncio.Event()
        box["stop"] = (asyncio.get_running_loop(), stop)
        started.set()
        await stop.wait()
        await runner.cleanup()
        await engine.dispose()

    try:
        asyncio.run(main())
    except BaseException as exc:  # surface start-up failures to the fixture
        box["error"] = exc
        started.set()


@pytest.fixture(scope="module", params=BACKENDS)
def live_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    data_dir = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        db_url = f"sqlite+aiosqlite:///{data_dir / 'fuzz.db'}"
    else:
        db_url = asyncio.run(create_pg_database())
    box: dict[str, Any] = {}
    started = threading.Event()
    thread = threading.Thread(target=_serve, args=(db_url, data_dir, started, box), daemon=True)
    thread.start()
    if not started.wait(120):
        pytest.fail("the API under test did not start within 120 s (see the thread's output)")
    if "error" in box:
        raise box["error"]
    try:
        yield LiveApi(box["url"], box["token"])
    finally:
        loop, stop = box["stop"]
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        if thread.is_alive():
            pytest.fail("the API under test did not shut down within 60 s of being asked to")
        if request.param != "sqlite":
            asyncio.run(drop_pg_database(db_url))


@pytest.fixture(scope="module")
def api_schema(live_api: LiveApi) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "dictionaries": {"hostile": {"values": HOSTILE}},
            "generation": {
                "mode": "all",
                "deterministic": True,
                "max-examples": MAX_EXAMPLES,
                "dictionaries": {"string": {"dictionary": "hostile", "probability": 0.25}},
            },
        }
    )
    return schemathesis.openapi.from_url(f"{live_api.url}/api/openapi.json", config=config)


@pytest.fixture(autouse=True)
def _nodeid_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's lazy loader reads ``node._nodeid``, which pytest 9 no longer has; give
    it one (it only uses it to label sub-tests)."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


# One pytest item holds every operation (they are sub-tests), so the suite-wide 15-minute
# pytest-timeout is a bound on ~50 operations at once; on a machine with both cores busy they
# were seen to need up to 26 minutes (schedule operations draw from the cron grammar's large
# regular expression). A hang still fails, with a stack, after 45 minutes.
@pytest.mark.timeout(2700)
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # The schedule operations publish the exact cron grammar as a ~20 KB regular expression;
    # drawing strings from it is slow and rejects many draws, but is correct. Every other
    # health check stays on.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_generated_request_gets_the_documented_answer(case: Any, live_api: LiveApi) -> None:
    excluded = [max_response_time]  # timing is measured by bench/, not asserted
    if (case.operation.method.upper(), case.operation.path) in DOCUMENT_BODIES:
        excluded.append(positive_data_acceptance)
    if case.operation.path == "/api/projects/validate":
        excluded.append(negative_data_rejection)  # its answer to a bad document is 200 + problems
    case.call_and_validate(
        base_url=live_api.url,
        headers={"Authorization": f"Bearer {live_api.token}"},
        excluded_checks=excluded,
        timeout=30,
    )
