"""Address lookup ("discovery"): finding an endpoint's addresses from its id alone.

Pluggable services, each publishing our :class:`~aioiroh.dns.endpoint_info.EndpointInfo`
and/or resolving others', as in Rust iroh: pkarr relays (:class:`PkarrPublisher`,
:class:`PkarrResolver`), DNS (:class:`DnsAddressLookup`), mDNS on the local network
(:class:`MdnsAddressLookup`) and an in-memory table (:class:`MemoryLookup`).
"""

from .base import AddressLookup, AddressLookupError, AddressLookupItem
from .dns import DnsAddressLookup
from .mdns import MdnsAddressLookup
from .memory import MemoryLookup
from .pkarr import PkarrPublisher, PkarrResolver

__all__ = [
    "AddressLookup",
    "AddressLookupError",
    "AddressLookupItem",
    "DnsAddressLookup",
    "MdnsAddressLookup",
    "MemoryLookup",
    "PkarrPublisher",
    "PkarrResolver",
]
