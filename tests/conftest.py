"""Shared test setup: asyncio mode comes from pyproject; every test has a timeout there too."""

from __future__ import annotations

import asyncio
import os

import pytest

# The CLI defaults to n0's public network; every aioiroh child process of the suite inherits
# this and uses the local "minimal" preset instead unless a test passes settings explicitly.
os.environ["AIOIROH_DEFAULT_PRESET"] = "minimal"


@pytest.fixture(autouse=True)
async def _no_leaked_tasks():
    """Fail a test that leaves asyncio tasks running behind it."""
    before = set(asyncio.all_tasks())
    yield
    # Give cancelled tasks a few loop turns to finish unwinding.
    for _ in range(20):
        leaked = [
            t
            for t in asyncio.all_tasks() - before
            if not t.done() and t is not asyncio.current_task()
        ]
        if not leaked:
            return
        await asyncio.sleep(0)
    names = ", ".join(t.get_name() + ":" + repr(t.get_coro()) for t in leaked)
    pytest.fail(f"test leaked asyncio tasks: {names}")


# Fixture modules, one per area, each owned by the code it tests.
pytest_plugins = [
    "tests.support.netguard",
    "tests.support.oracle",
    "tests.support.relay",
    "tests.support.dns",
    "tests.support.lab",
]
