"""BAO verified streaming with 16 KiB chunk groups (chunk log 4), as iroh-blobs sends it.

The BLAKE3 tree is cut at the chunk-group level: leaves are 16 KiB groups (the last one
possibly short), every node above them is a parent whose two child chaining values form a
64-byte "pair". The outboard is all pairs in pre-order. A response to a request for some chunk
ranges is the blob size (u64 little-endian) followed, in pre-order, by the pair of every parent
that intersects the ranges and the data of every leaf group that does. Everything here is
sans-I/O: :class:`BaoDecoder` is fed bytes and yields verified data; it rejects the first group
(or pair) whose hash does not match, before any of its bytes are handed out.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from ..errors import IrohError
from ._blake3tree import CHUNK_LEN, parent_cv, subtree_cv

__all__ = [
    "GROUP_CHUNKS",
    "GROUP_LEN",
    "BaoDecoder",
    "BaoVerificationError",
    "encode",
    "outboard",
]

GROUP_CHUNKS: Final = 16
GROUP_LEN: Final = GROUP_CHUNKS * CHUNK_LEN
PAIR_LEN: Final = 64
_SIZE = struct.Struct("<Q")

# Chunk ranges as (start, end) pairs in 1 KiB chunks; end None means open-ended.
Ranges = Sequence[tuple[int, int | None]]
ALL: Final[Ranges] = ((0, None),)


class BaoVerificationError(IrohError):
    """Received data or a hash pair does not match the expected BLAKE3 tree."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset  # byte offset in the blob of the first rejected data


def _n_chunks(size: int) -> int:
    return max(1, (size + CHUNK_LEN - 1) // CHUNK_LEN)


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _intersects(ranges: Ranges, s: int, e: int) -> bool:
    return any(rs < e and (re is None or re > s) for rs, re in ranges)


def _clamp(ranges: Ranges, n_chunks: int) -> Ranges:
    # A range past the end still proves the size: it is answered with the last chunk.
    out: list[tuple[int, int | None]] = []
    for rs, re in ranges:
        if rs >= n_chunks:
            rs = n_chunks - 1
        out.append((rs, re))
    return out


@dataclass(frozen=True)
class _Node:
    start: int  # first chunk
    end: int  # chunk after the last (capped at the blob's chunk count)
    index: int  # pre-order index among parents (for leaves: unused)
    is_root: bool

    @property
    def is_leaf(self) -> bool:
        return self.end - self.start <= GROUP_CHUNKS


def _walk(n_chunks: int, ranges: Ranges) -> Iterator[_Node]:
    """Pre-order nodes of the tree over ``n_chunks`` that intersect ``ranges``."""
    stack = [_Node(0, n_chunks, 0, True)]
    while stack:
        node = stack.pop()
        if not _intersects(ranges, node.start, node.end):
            continue
        yield node
        if node.is_leaf:
            continue
        left = _split(node.end - node.start)
        mid = node.start + left
        left_parents = max(0, (left // GROUP_CHUNKS) - 1)
        stack.append(_Node(mid, node.end, node.index + 1 + left_parents, False))
        stack.append(_Node(node.start, mid, node.index + 1, False))


def outboard(data: bytes) -> tuple[bytes, bytes]:
    """Return ``(hash, outboard)``: the BLAKE3 root and every pair in pre-order."""
    n = _n_chunks(len(data))
    pairs: list[bytes] = []

    def rec(s: int, e: int, is_root: bool) -> bytes:
        if e - s <= GROUP_CHUNKS:
            return subtree_cv(data[s * CHUNK_LEN : e * CHUNK_LEN], s, is_root=is_root)
        mid = s + _split(e - s)
        slot = len(pairs)
        pairs.append(b"")
        left = rec(s, mid, False)
        right = rec(mid, e, False)
        pairs[slot] = left + right
        return parent_cv(left, right, is_root=is_root)

    root = rec(0, n, True)
    return root, b"".join(pairs)


def encode(data: bytes, outboard_: bytes, ranges: Ranges = ALL) -> Iterator[bytes]:
    """The pre-order BAO response for ``ranges`` of ``data``, as a stream of pieces."""
    size = len(data)
    yield _SIZE.pack(size)
    n = _n_chunks(size)
    for node in _walk(n, _clamp(ranges, n)):
        if node.is_leaf:
            yield data[node.start * CHUNK_LEN : node.end * CHUNK_LEN]
        else:
            yield outboard_[node.index * PAIR_LEN : (node.index + 1) * PAIR_LEN]


class BaoDecoder:
    """Incremental verifier of a BAO response for ``root`` and ``ranges``.

    :meth:`feed` takes any slicing of the stream and returns verified ``(offset, data)``
    pieces; :attr:`done` is true once every requested group arrived. ``max_size`` bounds the
    size the peer may announce.
    """

    def __init__(self, root: bytes, ranges: Ranges = ALL, *, max_size: int = 1 << 50) -> None:
        self._root = root
        self._ranges = ranges
        self._max_size = max_size
        self._buf = bytearray()
        self.size: int | None = None
        self._nodes: Iterator[_Node] | None = None
        self._expected: dict[tuple[int, int], bytes] = {}
        self._pending: _Node | None = None
        self.done = False

    def _need(self, node: _Node) -> int:
        if node.is_leaf:
            assert self.size is not None
            return min(node.end * CHUNK_LEN, self.size) - node.start * CHUNK_LEN
        return PAIR_LEN

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self.done:
            if data:
                raise BaoVerificationError("data after the end of the response", -1)
            return []
        self._buf += data
        out: list[tuple[int, bytes]] = []
        if self.size is None:
            if len(self._buf) < 8:
                return out
            (size,) = _SIZE.unpack_from(self._buf)
            del self._buf[:8]
            if size > self._max_size:
                raise BaoVerificationError(f"announced size {size} exceeds the limit", 0)
            self.size = size
            n = _n_chunks(size)
            self._expected[(0, n)] = self._root
            self._nodes = _walk(n, _clamp(self._ranges, n))
            self._pending = next(self._nodes, None)
        assert self._nodes is not None
        while self._pending is not None:
            node = self._pending
            need = self._need(node)
            if len(self._buf) < need:
                break
            piece = bytes(self._buf[:need])
            del self._buf[:need]
            want = self._expected.pop((node.start, node.end))
            offset = node.start * CHUNK_LEN
            if node.is_leaf:
                if subtree_cv(piece, node.start, is_root=node.is_root) != want:
                    raise BaoVerificationError(f"chunk group at {offset} is corrupt", offset)
                out.append((offset, piece))
            else:
                left, right = piece[:32], piece[32:]
                if parent_cv(left, right, is_root=node.is_root) != want:
                    raise BaoVerificationError(f"hash pair above {offset} is corrupt", offset)
                mid = node.start + _split(node.end - node.start)
                self._expected[(node.start, mid)] = left
                self._expected[(mid, node.end)] = right
            self._pending = next(self._nodes, None)
        if self._pending is None:
            self.done = True
            if self._buf:
                raise BaoVerificationError("data after the end of the response", -1)
        return out
