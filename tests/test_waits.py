"""The deadline helpers of tests/waits.py fail clearly instead of hanging, and change nothing else."""

from __future__ import annotations

import asyncio

import pytest

from tests.waits import DeadlineExceeded, wait_until, wait_until_async, within


async def test_within_returns_the_result_of_an_await_that_finishes() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert await within(answer(), "the answer") == 42


async def test_within_cancels_a_hanging_await_and_names_it_and_its_state() -> None:
    never = asyncio.Event()
    cancelled = asyncio.Event()

    async def hang() -> None:
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(DeadlineExceeded) as info:
        await within(hang(), "the worker goes idle", deadline_s=0.05, state=lambda: "3 rows held")
    assert (
        str(info.value) == "not done within 0.05 s: the worker goes idle (state at the deadline: 3 rows held)"
    )
    assert isinstance(info.value, AssertionError)  # reported as a test failure, not an error
    assert cancelled.is_set()  # nothing keeps running behind the failed test


async def test_a_timeout_raised_by_the_awaited_code_itself_is_not_reported_as_the_deadline() -> None:
    async def inner_timeout() -> None:
        raise TimeoutError("the vendor did not answer")

    with pytest.raises(TimeoutError, match="the vendor did not answer") as info:
        await within(inner_timeout(), "a send", deadline_s=30)
    assert not isinstance(info.value, DeadlineExceeded)


async def test_a_state_report_that_fails_does_not_hide_the_deadline() -> None:
    with pytest.raises(DeadlineExceeded, match=r"never \(state unavailable: ZeroDivisionError"):
        await within(asyncio.Event().wait(), "never", deadline_s=0.01, state=lambda: 1 / 0)


async def test_wait_until_returns_once_the_condition_holds_and_fails_naming_it_otherwise() -> None:
    seen: list[int] = []

    async def produce() -> None:
        for i in range(3):
            await asyncio.sleep(0)
            seen.append(i)

    producer = asyncio.create_task(produce())
    await wait_until(lambda: len(seen) == 3, what="three items")
    await producer
    with pytest.raises(DeadlineExceeded, match="not done within 0.05 s: four items"):
        await wait_until(lambda: len(seen) == 4, what="four items", deadline_s=0.05)

    async def never() -> bool:
        return False

    with pytest.raises(DeadlineExceeded, match="a row appears"):
        await wait_until_async(never, what="a row appears", deadline_s=0.05)
