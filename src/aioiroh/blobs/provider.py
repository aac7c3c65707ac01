"""A minimal in-memory store, provider (Get) and verified getter over ``/iroh-bytes/4``.

The provider reads one postcard request per bidirectional stream (the getter finishes its
send side after it) and answers with, per requested blob, the BAO pre-order response. The
getter verifies every chunk group as it arrives (:class:`~aioiroh.blobs.bao.BaoDecoder`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..endpoint.connection import Connection
from ..endpoint.streams import SendStream
from ..errors import IrohError
from .bao import ALL, BaoDecoder, Ranges, encode, outboard
from .protocol import ALPN, ChunkRangesSeq, GetRequest, decode_request
from .ticket import decode_hash_seq

__all__ = ["ALPN", "BlobNotFound", "BlobsProtocol", "MemStore", "get_blob"]

MAX_REQUEST_LEN = 64 * 1024
READ_SIZE = 64 * 1024


class BlobNotFound(IrohError):
    """The provider ended the response before sending the requested blob."""


class MemStore:
    """Blobs with their outboards, kept in memory."""

    def __init__(self) -> None:
        self._blobs: dict[bytes, tuple[bytes, bytes]] = {}

    def add_bytes(self, data: bytes) -> bytes:
        """Store ``data``; return its BLAKE3 hash."""
        root, ob = outboard(data)
        self._blobs[root] = (data, ob)
        return root

    def get(self, h: bytes) -> tuple[bytes, bytes] | None:
        return self._blobs.get(h)


def _ranges_of(bounds: tuple[int, ...]) -> Ranges:
    out: list[tuple[int, int | None]] = []
    for i in range(0, len(bounds), 2):
        out.append((bounds[i], bounds[i + 1] if i + 1 < len(bounds) else None))
    return out


class BlobsProtocol:
    """``Router`` handler serving Get requests from a :class:`MemStore`."""

    def __init__(self, store: MemStore) -> None:
        self.store = store

    async def accept(self, connection: Connection) -> None:
        try:
            while True:
                send, recv = await connection.accept_bi()
                req = decode_request(await recv.read_to_end(MAX_REQUEST_LEN))
                if isinstance(req, GetRequest):
                    await self._serve_get(send, req)
                await send.finish()
        except IrohError:
            return

    async def _serve_get(self, send: SendStream, req: GetRequest) -> None:
        entry = self.store.get(req.hash)
        if entry is None:
            return
        children: list[bytes] = []
        bounds = req.ranges.for_offset(0)
        if bounds:
            for piece in encode(entry[0], entry[1], _ranges_of(bounds)):
                await send.write_all(piece)
        if any(b for off, b in req.ranges.entries if off > 0):
            children = decode_hash_seq(entry[0])
        for i, child in enumerate(children, start=1):
            cb = req.ranges.for_offset(i)
            if not cb:
                continue
            ce = self.store.get(child)
            if ce is None:
                return
            for piece in encode(ce[0], ce[1], _ranges_of(cb)):
                await send.write_all(piece)


async def get_blob(
    connection: Connection,
    h: bytes,
    ranges: Ranges = ALL,
    *,
    progress: Callable[[int], None] | None = None,
    max_size: int = 1 << 40,
) -> bytes:
    """Fetch and verify ``ranges`` of blob ``h``; return the verified bytes in order."""
    bounds: list[int] = []
    for s, e in ranges:
        bounds.append(s)
        if e is not None:
            bounds.append(e)
    req = GetRequest(h, ChunkRangesSeq(((0, tuple(bounds)), (1, ()))))
    send, recv = await connection.open_bi()
    await send.write_all(req.encode())
    await send.finish()
    dec = BaoDecoder(h, ranges, max_size=max_size)
    out = bytearray()
    while not dec.done:
        data = await recv.read(READ_SIZE)
        if not data:
            raise BlobNotFound("response ended before the blob was complete")
        for _off, piece in dec.feed(data):
            out += piece
            if progress is not None:
                progress(len(out))
    return bytes(out)
