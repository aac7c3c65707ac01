"""``Endpoint.builder(preset)...bind()``: Rust's ``Endpoint::builder`` over :meth:`Endpoint.bind`.

::

    from aioiroh import Endpoint
    from aioiroh.presets import N0

    ep = await Endpoint.builder(N0).alpns([b"my-proto/0"]).bind()

The preset is applied at :meth:`EndpointBuilder.bind` (so ``IROH_FORCE_STAGING_RELAYS`` is
read then, as in Rust); every other call overrides or adds to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..address_lookup.base import AddressLookup
from ..address_lookup.services import AddressLookupServices
from ..base.key import SecretKey
from ..quic.aioquic_connection import QuicSettings
from ..socket.transports.relay import RelayTransportConfig
from .relay_mode import RelayMode

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = ["EndpointBuilder", "PresetLike", "apply_preset"]


class PresetLike(Protocol):
    """What ``Endpoint.bind(preset=...)`` needs from a preset.

    :class:`aioiroh.presets.Preset` is the ready-made one; any object with these methods
    works too (e.g. one that builds its services differently).
    """

    def resolve(self, environ: Mapping[str, str] | None = None) -> PresetLike:
        """The preset to use now (e.g. its staging variant when the environment asks)."""
        ...

    def relay_mode(self) -> RelayMode:
        """The relays to use."""
        ...

    def address_lookup(self, secret_key: SecretKey) -> list[AddressLookup]:
        """Fresh address lookup services for an endpoint with ``secret_key``."""
        ...


def apply_preset(
    preset: PresetLike,
    secret_key: SecretKey,
    relay_mode: RelayMode | None,
    address_lookup: Iterable[AddressLookup] | AddressLookupServices | None,
) -> tuple[RelayMode, Iterable[AddressLookup] | AddressLookupServices | None]:
    """The relay mode and lookup services for ``preset`` (resolved now); explicit ones win."""
    resolved = preset.resolve()
    if relay_mode is None:
        relay_mode = resolved.relay_mode()
    if address_lookup is None:
        services = resolved.address_lookup(secret_key)
        address_lookup = services or None
    return relay_mode, address_lookup


class EndpointBuilder:
    """Collects settings for :meth:`Endpoint.bind`, starting from a preset (None: Minimal).

    Each method returns the builder. :meth:`relay_mode` replaces the preset's relays;
    :meth:`address_lookup` adds a service to the preset's (as in Rust), and
    :meth:`clear_address_lookup` drops them all.
    """

    def __init__(self, preset: PresetLike | None = None) -> None:
        self._preset = preset
        self._kwargs: dict[str, Any] = {}
        self._extra_lookup: list[AddressLookup] = []
        self._clear_lookup = False

    def secret_key(self, key: SecretKey) -> EndpointBuilder:
        """The endpoint's identity (default: a fresh key)."""
        self._kwargs["secret_key"] = key
        return self

    def alpns(self, alpns: Sequence[bytes]) -> EndpointBuilder:
        """Protocols accepted as a server."""
        self._kwargs["alpns"] = list(alpns)
        return self

    def bind_addr(self, addr: str | tuple[str, int]) -> EndpointBuilder:
        """IPv4 socket address (default ``0.0.0.0:0``)."""
        self._kwargs["bind_addr"] = addr
        return self

    def bind_addr_v6(self, addr: str | tuple[str, int] | bool) -> EndpointBuilder:
        """IPv6 socket address; ``False`` for no IPv6 socket."""
        self._kwargs["bind_addr_v6"] = addr
        return self

    def relay_mode(self, mode: RelayMode) -> EndpointBuilder:
        """Replace the preset's relays."""
        self._kwargs["relay_mode"] = mode
        return self

    def relay_config(self, config: RelayTransportConfig) -> EndpointBuilder:
        """Relay client settings (TLS trust, timeouts)."""
        self._kwargs["relay_config"] = config
        return self

    def settings(self, settings: QuicSettings) -> EndpointBuilder:
        """QUIC transport settings."""
        self._kwargs["settings"] = settings
        return self

    def address_lookup(self, service: AddressLookup) -> EndpointBuilder:
        """Add an address lookup service to the preset's."""
        self._extra_lookup.append(service)
        return self

    def clear_address_lookup(self) -> EndpointBuilder:
        """Drop the preset's address lookup services (and any added so far)."""
        self._clear_lookup = True
        self._extra_lookup.clear()
        return self

    def nat_traversal(self, enabled: bool) -> EndpointBuilder:
        """Offer QUIC NAT traversal (default on)."""
        self._kwargs["nat_traversal"] = enabled
        return self

    def hard_nat(self, enabled: bool) -> EndpointBuilder:
        """Take part in aioiroh's birthday hard-NAT attempt (default off)."""
        self._kwargs["hard_nat"] = enabled
        return self

    async def bind(self) -> Endpoint:
        """Apply the preset and bind the endpoint."""
        from .endpoint import Endpoint

        kwargs = dict(self._kwargs)
        key = kwargs.pop("secret_key", None) or SecretKey.generate()
        services: list[AddressLookup] = []
        relay_mode = kwargs.pop("relay_mode", None)
        if self._preset is not None:
            resolved = self._preset.resolve()
            if relay_mode is None:
                relay_mode = resolved.relay_mode()
            if not self._clear_lookup:
                services = resolved.address_lookup(key)
        services.extend(self._extra_lookup)
        return await Endpoint.bind(
            key, relay_mode=relay_mode, address_lookup=services or None, **kwargs
        )
