"""BLAKE3 tree hashing with chaining values, written from the BLAKE3 specification.

BAO (the verified-streaming encoding iroh-blobs uses) needs the chaining value (CV) of
*non-root* subtrees: a chunk's CV depends on its chunk counter, and a subtree is finalised
without the ROOT flag unless it is the whole blob. The ``blake3`` package only returns root
hashes, so this module implements the compression function itself (pure Python: correct but
slow, well under 1 MB/s) and uses the optional C extension ``_blake3tree_c`` built from
``_blake3tree.c`` by setup.py when a compiler exists.
"""

from __future__ import annotations

import struct
from typing import Final

from ..errors import DecodeError

__all__ = [
    "ACCELERATED",
    "CHUNK_LEN",
    "chunk_cv",
    "parent_cv",
    "py_subtree_cv",
    "root_hash",
    "subtree_cv",
]

CHUNK_LEN: Final = 1024
BLOCK_LEN: Final = 64

CHUNK_START: Final = 1 << 0
CHUNK_END: Final = 1 << 1
PARENT: Final = 1 << 2
ROOT: Final = 1 << 3

IV: Final = (
    0x6A09E667,
    0xBB67AE85,
    0x3C6EF372,
    0xA54FF53A,
    0x510E527F,
    0x9B05688C,
    0x1F83D9AB,
    0x5BE0CD19,
)
_PERM: Final = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
_M32: Final = 0xFFFFFFFF


def _schedules() -> tuple[tuple[int, ...], ...]:
    # Message word order for each of the 7 rounds: the permutation applied r times.
    order = tuple(range(16))
    out = []
    for _ in range(7):
        out.append(order)
        order = tuple(order[p] for p in _PERM)
    return tuple(out)


_SCHEDULE: Final = _schedules()
_WORDS16: Final = struct.Struct("<16I")
_WORDS8: Final = struct.Struct("<8I")


def _compress(
    cv: tuple[int, ...], block: bytes, counter: int, block_len: int, flags: int
) -> list[int]:
    """The BLAKE3 compression function; returns all 16 output words."""
    m = _WORDS16.unpack(block)
    v = [
        *cv,
        IV[0],
        IV[1],
        IV[2],
        IV[3],
        counter & _M32,
        (counter >> 32) & _M32,
        block_len,
        flags,
    ]
    for s in _SCHEDULE:
        # Columns then diagonals; the G function inlined for speed.
        for a, b, c, d, x, y in (
            (0, 4, 8, 12, m[s[0]], m[s[1]]),
            (1, 5, 9, 13, m[s[2]], m[s[3]]),
            (2, 6, 10, 14, m[s[4]], m[s[5]]),
            (3, 7, 11, 15, m[s[6]], m[s[7]]),
            (0, 5, 10, 15, m[s[8]], m[s[9]]),
            (1, 6, 11, 12, m[s[10]], m[s[11]]),
            (2, 7, 8, 13, m[s[12]], m[s[13]]),
            (3, 4, 9, 14, m[s[14]], m[s[15]]),
        ):
            va = (v[a] + v[b] + x) & _M32
            vd = v[d] ^ va
            vd = ((vd >> 16) | (vd << 16)) & _M32
            vc = (v[c] + vd) & _M32
            vb = v[b] ^ vc
            vb = ((vb >> 12) | (vb << 20)) & _M32
            va = (va + vb + y) & _M32
            vd ^= va
            vd = ((vd >> 8) | (vd << 24)) & _M32
            vc = (vc + vd) & _M32
            vb ^= vc
            vb = ((vb >> 7) | (vb << 25)) & _M32
            v[a], v[b], v[c], v[d] = va, vb, vc, vd
    for i in range(8):
        v[i] ^= v[i + 8]
        v[i + 8] ^= cv[i]
    return v


def chunk_cv(data: bytes, counter: int, *, is_root: bool = False) -> bytes:
    """Chaining value of one chunk (at most 1024 bytes) with chunk index ``counter``.

    With ``is_root`` the result is the BLAKE3 hash of a single-chunk input.
    """
    if len(data) > CHUNK_LEN:
        raise DecodeError("chunk longer than 1024 bytes")
    cv: tuple[int, ...] = IV
    nblocks = max(1, (len(data) + BLOCK_LEN - 1) // BLOCK_LEN)
    for i in range(nblocks):
        block = data[i * BLOCK_LEN : (i + 1) * BLOCK_LEN]
        flags = 0
        if i == 0:
            flags |= CHUNK_START
        if i == nblocks - 1:
            flags |= CHUNK_END
            if is_root:
                flags |= ROOT
        blen = len(block)
        cv = tuple(_compress(cv, block.ljust(BLOCK_LEN, b"\0"), counter, blen, flags)[:8])
    return _WORDS8.pack(*cv)


def parent_cv(left: bytes, right: bytes, *, is_root: bool = False) -> bytes:
    """Chaining value of a parent node from its children's chaining values."""
    flags = PARENT | (ROOT if is_root else 0)
    return _WORDS8.pack(*_compress(IV, left + right, 0, BLOCK_LEN, flags)[:8])


def _left_len(n_chunks: int) -> int:
    # The left subtree holds the largest power of two of chunks strictly below the total.
    return 1 << ((n_chunks - 1).bit_length() - 1)


def py_subtree_cv(data: bytes, start_chunk: int = 0, *, is_root: bool = False) -> bytes:
    """Chaining value of the subtree over ``data`` whose first chunk has index ``start_chunk``.

    ``data`` must span a complete BLAKE3 subtree (a power-of-two number of chunks aligned
    to ``start_chunk``, the last one possibly short); BAO chunk groups and their parents are.
    """
    n_chunks = max(1, (len(data) + CHUNK_LEN - 1) // CHUNK_LEN)
    if n_chunks == 1:
        return chunk_cv(data, start_chunk, is_root=is_root)
    left = _left_len(n_chunks)
    split = left * CHUNK_LEN
    return parent_cv(
        py_subtree_cv(data[:split], start_chunk),
        py_subtree_cv(data[split:], start_chunk + left),
        is_root=is_root,
    )


try:
    from ._blake3tree_c import subtree_cv as _c_subtree_cv  # built by setup.py where gcc exists
except ImportError:  # no compiler at install time: the pure-Python fallback, same results
    _c_subtree_cv = None

ACCELERATED: Final = _c_subtree_cv is not None


def subtree_cv(data: bytes, start_chunk: int = 0, *, is_root: bool = False) -> bytes:
    """Chaining value of a complete subtree (see :func:`py_subtree_cv`), in C when built."""
    if _c_subtree_cv is not None:
        return bytes(_c_subtree_cv(data, start_chunk, is_root))
    return py_subtree_cv(data, start_chunk, is_root=is_root)


def root_hash(data: bytes) -> bytes:
    """The BLAKE3 hash of ``data`` (uses the ``blake3`` package when it is installed)."""
    try:
        import blake3
    except ImportError:
        return subtree_cv(data, 0, is_root=True)
    return blake3.blake3(data).digest()
