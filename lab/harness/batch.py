"""Run lab work concurrently so that a failure or a cancellation always ends promptly.

``asyncio.gather`` leaves the other awaitables running when one fails. In a module fixture
run by ``asyncio.run`` those leftovers are cancelled at loop shutdown together with asyncio's
own helper tasks; a child process then being started (``create_subprocess_exec`` connecting
its pipes) waits for its cancelled pipe-connect helper forever (CPython 3.11), and the test
run hangs. Here every sibling is cancelled *and awaited* before the error propagates, so
nothing is left for the loop shutdown to cancel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from .netns import LabError, missing_prerequisites

T = TypeVar("T")


async def gather_all(*aws: Awaitable[T]) -> list[T]:
    """Like ``asyncio.gather``, but on the first error (or a cancellation) the others are
    cancelled and awaited before it propagates."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        # Nothing here ignores cancellation, so this returns as soon as each has unwound.
        await asyncio.wait(tasks)
        raise


async def gather_limited(
    fn: Callable[[Any], Awaitable[T]], items: Sequence[Any], limit: int
) -> list[T]:
    """``fn(item)`` for every item, at most ``limit`` at a time (see :func:`gather_all`)."""
    sem = asyncio.Semaphore(limit)

    async def one(item: Any) -> T:
        async with sem:
            return await fn(item)

    return await gather_all(*(one(i) for i in items))


def require_lab() -> None:
    """Raise LabError at once when the lab cannot run here (before anything waits on it)."""
    problems = missing_prerequisites()
    if problems:
        raise LabError("NAT lab unavailable: " + "; ".join(problems))


def run_lab(main: Coroutine[Any, Any, T], timeout: float) -> T:
    """``asyncio.run`` for a batch of lab work: checks the prerequisites first and bounds it."""
    try:
        require_lab()
    except LabError:
        main.close()
        raise
    return asyncio.run(asyncio.wait_for(main, timeout))
