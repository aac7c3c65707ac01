"""Endpoint presets: what an endpoint reaches beyond this machine (Rust's ``iroh::presets``).

A preset names the relays an endpoint uses and the address lookup services that publish its
addresses and resolve others'. Use one with ``Endpoint.bind(preset=N0)`` or
``Endpoint.builder(N0)...bind()``; explicit settings given alongside it win.

* :data:`Minimal` — nothing beyond what is mandatory: no relays, no address lookup. This is
  also what a bare ``Endpoint.bind()`` does, so nothing leaves the machine unless asked.
* :data:`N0` — n0's public network: the production relays, a ``PkarrPublisher`` and a
  ``PkarrResolver`` talking HTTPS to n0's pkarr relay, and ``DnsAddressLookup`` under n0's
  origin. Like Rust, it publishes only the home relay, not IP addresses.
* :data:`N0DisableRelay` — as :data:`N0` without relays; it publishes the direct (IP)
  addresses instead, since without a relay there is nothing else to publish.

With ``IROH_FORCE_STAGING_RELAYS`` set to a non-empty value, the n0 presets use n0's staging
relays, pkarr relay and origin, as in Rust (resolved at bind time, see :meth:`Preset.resolve`).

A custom preset is a :class:`Preset` value, e.g. your own infrastructure::

    MINE = Preset(
        "mine",
        relays=("https://relay.example.org/",),
        pkarr_relay="https://dns.example.org/pkarr",
        dns_origin="dns.example.org",
    )
    ep = await Endpoint.bind(preset=MINE)

Nothing in this module contacts the network; the services are only created at bind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import defaults
from .address_lookup.base import AddressLookup
from .base.key import SecretKey
from .base.relay_url import RelayUrl
from .endpoint.relay_mode import RelayMode, force_staging_infra
from .errors import IrohError

__all__ = ["N0", "PRESETS", "Minimal", "N0DisableRelay", "Preset", "PresetError", "by_name"]


class PresetError(IrohError, ValueError):
    """A preset is malformed (bad relay or pkarr URL, bad nameserver) or unknown by name."""


@dataclass(frozen=True, slots=True)
class Preset:
    """Relays and address lookup services for an endpoint; immutable, checked on creation.

    ``relays``: relay URLs (empty: no relays). ``pkarr_relay``: an HTTP(S) pkarr relay URL;
    the endpoint publishes its signed address record there and resolves others' from it.
    ``dns_origin``: resolve others with DNS TXT records under this origin.
    ``dns_nameserver``: ``(ip, port)`` of the DNS server for ``dns_origin`` lookups (None:
    the system's resolvers). ``publish_ip_addrs``: publish direct addresses to the pkarr
    relay too, not only the home relay. ``staging``: the preset used instead when
    ``IROH_FORCE_STAGING_RELAYS`` is set (None: this one regardless). ``port_mapping``: ask
    the default gateway for a port mapping (PCP, NAT-PMP, UPnP), as Rust's default does.
    """

    name: str
    relays: tuple[str, ...] = ()
    pkarr_relay: str | None = None
    dns_origin: str | None = None
    dns_nameserver: tuple[str, int] | None = None
    publish_ip_addrs: bool = False
    staging: Preset | None = None
    port_mapping: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.relays, str):
            raise PresetError("relays must be a sequence of URLs, not one string")
        object.__setattr__(self, "relays", tuple(self.relays))
        for url in self.relays:
            try:
                RelayUrl.parse(url)
            except IrohError as exc:
                raise PresetError(f"preset {self.name!r}: bad relay URL {url!r}: {exc}") from exc
        if self.pkarr_relay is not None:
            parts = urlsplit(self.pkarr_relay)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise PresetError(
                    f"preset {self.name!r}: pkarr relay must be an http(s) URL: "
                    f"{self.pkarr_relay!r}"
                )
        if self.dns_origin is not None and not self.dns_origin.strip("."):
            raise PresetError(f"preset {self.name!r}: empty DNS origin")
        if self.dns_nameserver is not None:
            host, port = self.dns_nameserver
            if not isinstance(port, int) or not 0 < port < 65536 or not host:
                raise PresetError(
                    f"preset {self.name!r}: bad DNS nameserver {self.dns_nameserver!r}"
                )

    def resolve(self, environ: Mapping[str, str] | None = None) -> Preset:
        """The preset actually used: :attr:`staging` when ``IROH_FORCE_STAGING_RELAYS`` is set."""
        if self.staging is not None and force_staging_infra(environ):
            return self.staging.resolve(environ)
        return self

    def replace(self, **changes: Any) -> Preset:
        """A copy with some fields changed (``relays=()`` drops the relays, and so on).

        The staging variant is dropped: the copy is a custom preset of its own.
        """
        changes.setdefault("staging", None)
        return dataclasses.replace(self, **changes)

    def relay_mode(self) -> RelayMode:
        """The :class:`RelayMode` for :attr:`relays` (disabled when there are none)."""
        return RelayMode.custom(self.relays) if self.relays else RelayMode.disabled()

    def address_lookup(self, secret_key: SecretKey) -> list[AddressLookup]:
        """Fresh address lookup services for an endpoint with ``secret_key`` (none: [])."""
        from .address_lookup.dns import DnsAddressLookup
        from .address_lookup.pkarr import PkarrPublisher, PkarrResolver

        services: list[AddressLookup] = []
        if self.pkarr_relay is not None:
            services.append(
                PkarrPublisher(secret_key, self.pkarr_relay, relay_only=not self.publish_ip_addrs)
            )
            services.append(PkarrResolver(self.pkarr_relay))
        if self.dns_origin is not None:
            services.append(DnsAddressLookup(self.dns_origin, self.dns_nameserver))
        return services

    def to_json(self) -> dict[str, Any]:
        """What this preset reaches, as plain JSON data (the staging variant left out)."""
        return {
            "name": self.name,
            "relays": list(self.relays),
            "pkarr_relay": self.pkarr_relay,
            "dns_origin": self.dns_origin,
            "dns_nameserver": list(self.dns_nameserver) if self.dns_nameserver else None,
            "publish_ip_addrs": self.publish_ip_addrs,
            "port_mapping": self.port_mapping,
        }


Minimal = Preset("minimal")
"""No relays and no address lookup: nothing leaves the machine unless you dial out."""

_N0_STAGING = Preset(
    "n0-staging",
    relays=defaults.STAGING_RELAY_URLS,
    pkarr_relay=defaults.N0_DNS_PKARR_RELAY_STAGING,
    dns_origin=defaults.N0_DNS_ENDPOINT_ORIGIN_STAGING,
    port_mapping=True,
)

N0 = Preset(
    "n0",
    relays=defaults.PROD_RELAY_URLS,
    pkarr_relay=defaults.N0_DNS_PKARR_RELAY_PROD,
    dns_origin=defaults.N0_DNS_ENDPOINT_ORIGIN_PROD,
    staging=_N0_STAGING,
    port_mapping=True,
)
"""n0's public network: production relays, pkarr publish/resolve and DNS lookup (the internet)."""

N0DisableRelay = Preset(
    "n0-no-relay",
    pkarr_relay=defaults.N0_DNS_PKARR_RELAY_PROD,
    dns_origin=defaults.N0_DNS_ENDPOINT_ORIGIN_PROD,
    publish_ip_addrs=True,
    port_mapping=True,
    staging=_N0_STAGING.replace(name="n0-no-relay-staging", relays=(), publish_ip_addrs=True),
)
"""n0's address lookup without relays; publishes IP addresses (the internet)."""

PRESETS: Mapping[str, Preset] = {p.name: p for p in (Minimal, N0, N0DisableRelay)}
"""The built-in presets by CLI name (``minimal``, ``n0``, ``n0-no-relay``)."""


def by_name(name: str) -> Preset:
    """A built-in preset by its name; PresetError for an unknown one."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(PRESETS)
        raise PresetError(f"unknown preset {name!r} (known: {known})") from None
