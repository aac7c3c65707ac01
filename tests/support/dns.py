"""Test fixtures: dns — our DNS/pkarr server on loopback with an SQLite file in tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aioiroh.dns_server.config import DnsServerConfig
from aioiroh.dns_server.server import DnsServer

TEST_ORIGIN = "test.iroh.invalid."


def dns_server_config(tmp_path: Path, **overrides: object) -> DnsServerConfig:
    """Loopback config: ephemeral ports, sqlite in ``tmp_path``, no rate limit by default."""
    values: dict[str, object] = {
        "origins": (TEST_ORIGIN,),
        "http_port": 0,
        "dns_port": 0,
        "store_path": tmp_path / "dns.sqlite",
        "put_rate": None,
    }
    values.update(overrides)
    return DnsServerConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def dns_server(tmp_path: Path) -> AsyncIterator[DnsServer]:
    """A running :class:`DnsServer` on 127.0.0.1 (HTTP and DNS on ephemeral ports)."""
    async with DnsServer(dns_server_config(tmp_path)) as server:
        yield server
