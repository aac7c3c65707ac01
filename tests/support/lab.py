"""Test fixtures: lab (network namespaces with NAT routers; needs root, nft, ip, tc).

The ``lab`` fixture *fails* (never skips) when the machine cannot run the lab, so a CI job
that lost root or its tools shows red instead of quietly testing less.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from lab.harness import Lab, missing_prerequisites


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    """A fresh, empty Lab; every namespace and child process is removed after the test."""
    problems = missing_prerequisites()
    if problems:
        pytest.fail("NAT lab unavailable: " + "; ".join(problems))
    async with Lab() as lab_:
        yield lab_
