"""Lab work is cancellable at every step, and a failing batch ends at once (no hang).

A module fixture once hung ``make test`` for good: one cell failed, ``asyncio.gather`` left
the other cells running, and ``asyncio.run`` cancelled them at shutdown together with
asyncio's helper that connects a starting child's pipes, which then waited forever.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from lab.harness import Lab, LabError, gather_all, run_lab
from lab.relay import start_relay

pytestmark = pytest.mark.netns


@pytest.mark.timeout(60)
async def test_starting_a_lab_process_can_be_cancelled_at_every_step(lab: Lab) -> None:
    del lab  # checks the prerequisites; each attempt below gets a fresh lab
    for turns in range(0, 40, 3):

        async def start() -> None:
            async with Lab() as fresh:
                await start_relay(fresh)
                await asyncio.sleep(60)

        task = asyncio.create_task(start())
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        t0 = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        assert time.monotonic() - t0 < 5, f"cancel after {turns} loop turns took too long"


async def _batch_with_one_failure(leftover: list[asyncio.Task[object]]) -> None:
    async def starts_relay() -> None:
        async with Lab() as lab:
            await start_relay(lab)
            await asyncio.sleep(60)

    async def fails_while_a_child_starts() -> None:
        # Fail exactly while a sibling's child process is connecting its pipes (asyncio's
        # helper task is then alive): the moment that used to hang the loop's shutdown.
        for _ in range(100_000):
            if any(
                getattr(t.get_coro(), "__name__", "") == "_connect_pipes"
                for t in asyncio.all_tasks()
            ):
                raise LabError("one cell failed")
            await asyncio.sleep(0)
        raise AssertionError("no child process started")

    before = asyncio.all_tasks()
    try:
        await gather_all(*(starts_relay() for _ in range(4)), fails_while_a_child_starts())
    finally:
        # Whatever is still running here would be cancelled by asyncio.run's shutdown,
        # the step that could wait forever.
        leftover.extend(t for t in asyncio.all_tasks() - before if not t.done())


@pytest.mark.timeout(30)
def test_a_batch_with_a_failing_cell_stops_promptly() -> None:
    leftover: list[asyncio.Task[object]] = []
    t0 = time.monotonic()
    with pytest.raises(LabError, match="one cell failed"):
        run_lab(_batch_with_one_failure(leftover), 20)
    assert time.monotonic() - t0 < 10
    assert not leftover, f"tasks left for the loop's shutdown to cancel: {leftover}"
