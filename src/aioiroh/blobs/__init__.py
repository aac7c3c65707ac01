"""Content-addressed blobs on the iroh-blobs wire protocol (ALPN ``/iroh-bytes/4``).

So far: BLAKE3 tree hashing with chaining values of non-root subtrees, which BAO
verification needs and the ``blake3`` package does not expose.
"""

from __future__ import annotations

from ._blake3tree import CHUNK_LEN, chunk_cv, parent_cv, root_hash, subtree_cv

__all__ = ["CHUNK_LEN", "chunk_cv", "parent_cv", "root_hash", "subtree_cv"]
