"""Deadlines for the waits of tests.

Every await that waits for something to happen (a worker to go idle, a service to stop, a
condition to hold) goes through one of these, so a broken test fails after a deadline with a
message that names what it was waiting for, instead of hanging until pytest-timeout's 15-minute
backstop kills the whole run.

The deadlines are not timing assertions: they only stop a broken test, and are long enough for the
machine this runs on with both cores busy (CI shares it with other jobs). Performance is measured
in bench/, never asserted here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: Default deadline (seconds) of a wait for something the code under test does by itself.
DEADLINE_S = 60.0
#: How often (seconds) a polled condition is re-checked while the event loop runs everything else.
POLL_S = 0.01


class DeadlineExceeded(AssertionError):
    """A wait did not finish within its deadline (an assertion failure, not an error of the code)."""


def _message(what: str, deadline_s: float, state: Callable[[], object] | None) -> str:
    detail = ""
    if state is not None:
        try:
            detail = f" (state at the deadline: {state()})"
        except Exception as exc:  # the state report must never hide the timeout itself
            detail = f" (state unavailable: {exc!r})"
    return f"not done within {deadline_s:g} s: {what}{detail}"


async def within(
    aw: Awaitable[T],
    what: str,
    *,
    deadline_s: float = DEADLINE_S,
    state: Callable[[], object] | None = None,
) -> T:
    """Await ``aw`` and return its result; if it takes longer than ``deadline_s`` seconds, cancel
    it and fail with :class:`DeadlineExceeded` naming ``what`` (plus ``state()``, a short account
    of what was reached, if given). A ``TimeoutError`` raised by ``aw`` itself passes through."""
    scope = asyncio.timeout(deadline_s)
    try:
        async with scope:
            return await aw
    except TimeoutError as exc:
        if scope.expired():
            raise DeadlineExceeded(_message(what, deadline_s, state)) from exc
        raise


async def wait_until(
    predicate: Callable[[], object],
    *,
    what: str,
    deadline_s: float = DEADLINE_S,
    state: Callable[[], object] | None = None,
) -> None:
    """Wait until ``predicate()`` is true, re-checking every :data:`POLL_S` while the loop runs
    everything else; fail naming ``what`` at the deadline."""

    async def poll() -> None:
        # A state without an event of its own (a fake's request list, a worker's counters): poll it.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)

    await within(poll(), what, deadline_s=deadline_s, state=state)


async def wait_until_async(
    predicate: Callable[[], Awaitable[object]],
    *,
    what: str,
    deadline_s: float = DEADLINE_S,
    state: Callable[[], object] | None = None,
) -> None:
    """:func:`wait_until` for a condition that itself awaits (a database read, say)."""

    async def poll() -> None:
        while not await predicate():  # noqa: ASYNC110 - a database row has no in-process event
            await asyncio.sleep(POLL_S)

    await within(poll(), what, deadline_s=deadline_s, state=state)
