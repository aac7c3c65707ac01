"""A self-hostable iroh relay server (``aioiroh relay``), built on aiohttp.

Import :class:`RelayServer` and :class:`ServerConfig` from here.
"""

from __future__ import annotations

from .config import AccessConfig, RateLimit, ServerConfig
from .metrics import RelayMetrics
from .server import RelayServer, ServerState

__all__ = [
    "AccessConfig",
    "RateLimit",
    "RelayMetrics",
    "RelayServer",
    "ServerConfig",
    "ServerState",
]
