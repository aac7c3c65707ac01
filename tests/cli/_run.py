"""Run ``aioiroh`` subcommands as real processes, as a user would, and always reap them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

CLI = [sys.executable, "-m", "aioiroh.cli.main"]
PIPE = asyncio.subprocess.PIPE
DEVNULL = asyncio.subprocess.DEVNULL
# Generous: a cold interpreter start plus binding takes ~1 s, more on a busy 2-core CI box.
START_TIMEOUT = 30.0


async def spawn(*args: str, stdin: Any = DEVNULL, stdout: Any = PIPE, stderr: Any = PIPE):  # type: ignore[no-untyped-def]
    return await asyncio.create_subprocess_exec(
        *CLI, *args, stdin=stdin, stdout=stdout, stderr=stderr
    )


async def run(
    *args: str, input: bytes | None = None, timeout: float = 60.0
) -> tuple[int, bytes, bytes]:
    """Run to completion; returns (exit code, stdout, stderr)."""
    proc = await spawn(*args, stdin=PIPE if input is not None else DEVNULL)
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout)
    finally:
        await reap(proc)
    return proc.returncode if proc.returncode is not None else -1, out, err


async def json_line(stream: asyncio.StreamReader | None, timeout: float = START_TIMEOUT) -> dict:
    """The next JSON object on ``stream`` (skipping any non-JSON lines)."""
    assert stream is not None
    while True:
        line = await asyncio.wait_for(stream.readline(), timeout)
        if not line:
            raise AssertionError("process ended before printing the expected JSON line")
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict):
                return obj


async def json_event(
    stream: asyncio.StreamReader | None, name: str, timeout: float = START_TIMEOUT
) -> dict:
    """The next JSON line whose ``event`` is ``name``."""
    while True:
        obj = await json_line(stream, timeout)
        if obj.get("event") == name:
            return obj


async def interrupt(proc: asyncio.subprocess.Process, timeout: float = 15.0) -> int:
    """Ctrl-C the process and wait for it to exit; returns its exit code."""
    proc.send_signal(signal.SIGINT)
    return await asyncio.wait_for(proc.wait(), timeout)


async def reap(proc: asyncio.subprocess.Process) -> None:
    """Make sure ``proc`` is gone: SIGTERM, then SIGKILL."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def running(*args: str, **kwargs: Any) -> AsyncIterator[asyncio.subprocess.Process]:
    """A background ``aioiroh`` process, reaped on exit."""
    proc = await spawn(*args, **kwargs)
    try:
        yield proc
    finally:
        await reap(proc)
