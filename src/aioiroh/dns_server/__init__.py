"""A self-hostable pkarr relay and DNS server for iroh discovery (``aioiroh dns-server``).

Import :class:`DnsServer` and :class:`DnsServerConfig` from here.
"""

from .config import DnsServerConfig
from .metrics import DnsServerMetrics
from .server import DnsServer, ServerState

__all__ = ["DnsServer", "DnsServerConfig", "DnsServerMetrics", "ServerState"]
