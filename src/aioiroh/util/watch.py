"""Observable values: :class:`Watchable` holds a value, :class:`Watcher` follows its changes.

Modelled on Rust's ``n0_watcher``: a watcher always sees the *latest* value, never a
backlog, so a slow watcher cannot make the producer buffer (intermediate values may be
skipped). Setting an equal value is not a change. Closing the watchable ends every
watcher's iteration and makes :meth:`Watcher.updated` raise :class:`WatcherClosed`.

Not thread-safe: call :meth:`Watchable.set` from the event loop that the watchers use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

from ..errors import IrohError

__all__ = ["Watchable", "Watcher", "WatcherClosed"]

T = TypeVar("T")


class WatcherClosed(IrohError):
    """The :class:`Watchable` behind a watcher was closed; no more updates will come."""


class Watchable(Generic[T]):
    """A value that can be read at any time and watched for changes."""

    def __init__(self, value: T) -> None:
        self._value = value
        # Bumped on every change; watchers compare it with the epoch they last saw.
        self._epoch = 0
        # Replaced on every change, so waiting is "wait for the event of my epoch".
        self._changed = asyncio.Event()
        self._closed = False

    def get(self) -> T:
        """The current value."""
        return self._value

    def set(self, value: T) -> bool:
        """Replace the value; wakes watchers and returns True if it differs from the old one."""
        if self._closed:
            raise WatcherClosed("watchable is closed")
        if value == self._value:
            return False
        self._value = value
        self._bump()
        return True

    def close(self) -> None:
        """Stop the watchable: watchers finish iterating and ``updated()`` raises."""
        if not self._closed:
            self._closed = True
            self._bump()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def watch(self) -> Watcher[T]:
        """A new watcher that considers the current value already seen."""
        return Watcher(self)

    async def updated(self) -> T:
        """Wait for the next change after this call and return the new value."""
        return await self.watch().updated()

    async def wait_for(self, predicate: Callable[[T], bool]) -> T:
        """Return the first value (current or future) for which ``predicate`` holds."""
        watcher = self.watch()
        value = self._value
        while not predicate(value):
            value = await watcher.updated()
        return value

    def _bump(self) -> None:
        self._epoch += 1
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def __repr__(self) -> str:
        return f"Watchable({self._value!r})"


class Watcher(Generic[T]):
    """Follows one :class:`Watchable`; iterate it for the current value and each change."""

    def __init__(self, watchable: Watchable[T]) -> None:
        self._watchable = watchable
        self._seen = watchable._epoch

    def get(self) -> T:
        """The current value; marks it as seen."""
        self._seen = self._watchable._epoch
        return self._watchable._value

    def is_closed(self) -> bool:
        """True once the watchable is closed."""
        return self._watchable._closed

    async def updated(self) -> T:
        """Wait until the value changed since it was last seen by this watcher; return it."""
        w = self._watchable
        while self._seen == w._epoch:
            if w._closed:
                raise WatcherClosed("watchable is closed")
            await w._changed.wait()
        if w._closed:
            raise WatcherClosed("watchable is closed")
        self._seen = w._epoch
        return w._value

    async def __aiter__(self) -> AsyncIterator[T]:
        """Yield the current value, then each new value, until the watchable is closed."""
        if self._watchable._closed:
            return
        yield self.get()
        while True:
            try:
                yield await self.updated()
            except WatcherClosed:
                return
