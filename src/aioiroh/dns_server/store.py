"""SQLite store of signed packets: newer wins, bounded size, expiry, a cache in front.

SQLite runs on one dedicated worker thread so the event loop never blocks on disk. Reads hit a
bounded in-memory cache first (DNS queries vastly outnumber PUTs).
"""

from __future__ import annotations

import asyncio
import enum
import sqlite3
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

from ..base.key import PublicKey
from ..dns.pkarr import SignedPacket
from ..errors import DecodeError

__all__ = ["PacketStore", "PutResult"]

T = TypeVar("T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS signed_packets (
    key BLOB PRIMARY KEY,
    packet BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    stored_at REAL NOT NULL
)
"""
_INDEX: Final = "CREATE INDEX IF NOT EXISTS signed_packets_stored_at ON signed_packets(stored_at)"


class PutResult(enum.Enum):
    """Outcome of :meth:`PacketStore.put`."""

    STORED = "stored"
    """New key, or newer than what was stored."""
    UNCHANGED = "unchanged"
    """Byte-identical to what is stored (refreshes its age)."""
    STALE = "stale"
    """Older than (or tied and not more recent than) the stored packet; nothing stored."""
    FULL = "full"
    """The store holds ``max_records`` already; a new key was refused."""


class PacketStore:
    """Async facade over a SQLite table keyed by public key.

    ``path`` ``None`` means an in-memory database. ``put`` and ``get`` are safe to call
    concurrently: all SQL runs on a single worker thread, in order.
    """

    def __init__(self, path: Path | None, *, max_records: int, cache_size: int) -> None:
        self._path = path
        self._max_records = max_records
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, SignedPacket] = OrderedDict()
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._count = 0

    async def open(self) -> None:
        """Open (and create if needed) the database."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dns-store")
        await self._run(self._open_sync)

    def _open_sync(self) -> None:
        target = ":memory:" if self._path is None else str(self._path)
        db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL" if self._path else "PRAGMA journal_mode=MEMORY")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        db.execute(_INDEX)
        self._db = db
        self._count = db.execute("SELECT COUNT(*) FROM signed_packets").fetchone()[0]

    async def close(self) -> None:
        """Close the database and stop the worker thread."""
        if self._executor is None:
            return
        await self._run(self._close_sync)
        self._executor.shutdown(wait=True)
        self._executor = None

    def _close_sync(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise RuntimeError("store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def __len__(self) -> int:
        return self._count

    # -- reads ------------------------------------------------------------------------------

    async def get(self, key: PublicKey) -> SignedPacket | None:
        """The stored packet for ``key``, if any."""
        raw = key.to_bytes()
        cached = self._cache.get(raw)
        if cached is not None:
            self._cache.move_to_end(raw)
            return cached
        packet = await self._run(self._get_sync, raw)
        if packet is not None:
            self._remember(raw, packet)
        return packet

    def _get_sync(self, raw: bytes) -> SignedPacket | None:
        assert self._db is not None
        row = self._db.execute("SELECT packet FROM signed_packets WHERE key = ?", (raw,)).fetchone()
        if row is None:
            return None
        try:
            return SignedPacket.from_bytes_unchecked(row[0])
        except DecodeError:
            return None  # a corrupted row answers like a missing one

    def _remember(self, raw: bytes, packet: SignedPacket) -> None:
        self._cache[raw] = packet
        self._cache.move_to_end(raw)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    # -- writes -----------------------------------------------------------------------------

    async def put(self, packet: SignedPacket, *, now: float) -> PutResult:
        """Store ``packet`` if it is newer than the stored one (already verified)."""
        raw = packet.public_key.to_bytes()
        result = await self._run(self._put_sync, raw, packet, now)
        if result is PutResult.STORED:
            self._remember(raw, packet)
        return result

    def _put_sync(self, raw: bytes, packet: SignedPacket, now: float) -> PutResult:
        db = self._db
        assert db is not None
        row = db.execute("SELECT packet FROM signed_packets WHERE key = ?", (raw,)).fetchone()
        if row is not None:
            old_bytes = bytes(row[0])
            if old_bytes == packet.to_bytes():
                db.execute("UPDATE signed_packets SET stored_at = ? WHERE key = ?", (now, raw))
                return PutResult.UNCHANGED
            try:
                old = SignedPacket.from_bytes_unchecked(old_bytes)
            except DecodeError:
                old = None
            if old is not None and not packet.more_recent_than(old):
                return PutResult.STALE
        elif self._count >= self._max_records:
            return PutResult.FULL
        db.execute(
            "INSERT OR REPLACE INTO signed_packets (key, packet, timestamp, stored_at) "
            "VALUES (?, ?, ?, ?)",
            (raw, packet.to_bytes(), packet.timestamp, now),
        )
        if row is None:
            self._count += 1
        return PutResult.STORED

    async def expire(self, *, older_than: float) -> int:
        """Delete records last stored before ``older_than``; return how many."""
        keys = await self._run(self._expire_sync, older_than)
        for raw in keys:
            self._cache.pop(raw, None)
        return len(keys)

    def _expire_sync(self, older_than: float) -> list[bytes]:
        db = self._db
        assert db is not None
        keys = [
            bytes(r[0])
            for r in db.execute(
                "SELECT key FROM signed_packets WHERE stored_at < ?", (older_than,)
            ).fetchall()
        ]
        if keys:
            db.execute("DELETE FROM signed_packets WHERE stored_at < ?", (older_than,))
            self._count = db.execute("SELECT COUNT(*) FROM signed_packets").fetchone()[0]
        return keys
