"""BLAKE3 tree hashing against the spec's test-vector inputs (oracle: the ``blake3`` package)."""

from __future__ import annotations

import blake3
import pytest

from aioiroh.blobs import _blake3tree as tree
from aioiroh.errors import DecodeError

# The input lengths of the BLAKE3 spec's test_vectors.json; input byte i is i % 251.
VECTOR_LENGTHS = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 63, 64, 65, 127, 128, 129, 1023, 1024, 1025,
    2048, 2049, 3072, 3073, 4096, 4097, 5120, 5121, 6144, 6145, 7168, 7169,
    8192, 8193, 16384, 31744, 102400,
]  # fmt: skip


def _vector_input(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


@pytest.mark.parametrize("length", VECTOR_LENGTHS)
def test_pure_python_root_matches_spec_vectors(length: int) -> None:
    data = _vector_input(length)
    assert tree.py_subtree_cv(data, 0, is_root=True) == blake3.blake3(data).digest()


def test_first_official_vector_hash() -> None:
    # test_vectors.json, input_len 0: the well-known empty hash.
    assert tree.py_subtree_cv(b"", 0, is_root=True).hex() == (
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    )


def test_non_root_chaining_values_compose_to_the_root() -> None:
    # Two 16 KiB chunk groups: their non-root CVs (the second at chunk counter 16) joined
    # by a ROOT parent give the hash of the 32 KiB blob.
    data = _vector_input(32 * 1024)
    left = tree.subtree_cv(data[:16384], 0)
    right = tree.subtree_cv(data[16384:], 16)
    assert tree.parent_cv(left, right, is_root=True) == blake3.blake3(data).digest()
    # A single chunk's root hash is not its chaining value.
    assert tree.chunk_cv(data[:1024], 0) != blake3.blake3(data[:1024]).digest()


def test_chunk_longer_than_1024_is_rejected() -> None:
    with pytest.raises(DecodeError):
        tree.chunk_cv(bytes(1025), 0)


def test_c_accelerator_is_built_here() -> None:
    # This machine has a compiler; without one the fallback is used (same results).
    assert tree.ACCELERATED, "run `python setup.py build_ext --inplace` (make .venv/.installed)"


@pytest.mark.parametrize("length", VECTOR_LENGTHS)
@pytest.mark.parametrize("start", [0, 16, 1 << 33])
def test_c_accelerator_matches_pure_python(length: int, start: int) -> None:
    data = _vector_input(length)
    for is_root in (False, True):
        if is_root and start:
            continue
        assert tree.subtree_cv(data, start, is_root=is_root) == tree.py_subtree_cv(
            data, start, is_root=is_root
        )
