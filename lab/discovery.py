"""Connect by EndpointId alone through NATs: our relay and our DNS server on the internet.

Each cell builds a fresh lab whose internet segment holds two public hosts: ``relay`` (our
relay with its QAD service, as in :mod:`lab.matrix`) and ``dns`` (``aioiroh dns-server``: pkarr
over HTTP and DNS over UDP, zone :data:`ORIGIN`). The server device, behind a router of
``server_nat``, publishes its home relay and direct addresses (the QAD-learned public one
included) to the DNS server with a :class:`PkarrPublisher`. The client device, behind a router
of ``client_nat``, dials the server's EndpointId with nothing else: no address and no relay URL
for it. The lookup is ``"dns"`` (:class:`DnsAddressLookup`, UDP queries to the DNS server) or
``"pkarr"`` (:class:`PkarrResolver`, HTTP GET from it). The client echoes once and watches for
a direct path (peers: :mod:`lab.discovery_peer`).

The PyPI ``iroh`` binding (Rust) cannot take part: its builder has no address-lookup setting
and its pkarr relay URLs are fixed to n0's HTTPS ones, so only aioiroh peers run here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lab.harness import Lab
from lab.relay import start_relay

ORIGIN = "natlab.iroh.invalid."
"""The zone the lab's DNS server answers for (``_iroh.<z32>.natlab.iroh.invalid.``)."""
PKARR_HTTP_PORT = 8080
DNS_PORT = 53

Lookup = Literal["dns", "pkarr"]
LOOKUPS: tuple[Lookup, ...] = ("dns", "pkarr")


@dataclass(frozen=True, slots=True)
class DiscoveryResult:
    server_nat: str
    client_nat: str
    lookup: str
    established: bool
    direct: bool
    connect_s: float | None
    """Seconds from the dial (by id) to the handshake, the lookup included."""
    time_to_direct: float | None
    """Seconds from the dial until a direct path was selected, or None."""
    lookup_s: float | None = None
    """Seconds from the dial until the lookup's first answer."""
    publish_s: float | None = None
    """Seconds from the server's bind until the DNS server held its full record."""
    relay_url: str = ""
    server_public_ip: str = ""
    """The address the internet sees the server's traffic come from (its router's WAN)."""
    published: dict[str, list[str]] = field(default_factory=dict)
    """What the server got accepted by the DNS server (``relay_urls``, ``direct_addresses``)."""
    resolved: list[dict[str, Any]] = field(default_factory=list)
    """What the client's lookup answered (``provenance``, ``relay_urls``, ``direct_addresses``)."""
    error: str | None = None

    def label(self) -> str:
        if not self.established:
            return "FAILED"
        if self.direct:
            return f"direct {self.time_to_direct:.2f}s (lookup {self.lookup_s:.2f}s)"
        return f"relayed (lookup {self.lookup_s:.2f}s)"


async def run_discovery_cell(
    server_nat: str, client_nat: str, lookup: Lookup, wait_direct: float
) -> DiscoveryResult:
    """One cell in a fresh lab: publish through our DNS server, connect by EndpointId."""
    async with Lab() as lab:
        relay, url = await start_relay(lab)
        dns_host = lab.host("dns")
        dns = await dns_host.spawn_python(
            "aioiroh.cli.main",
            "dns-server",
            "--bind",
            dns_host.ip,
            "--http-port",
            str(PKARR_HTTP_PORT),
            "--dns-port",
            str(DNS_PORT),
            "--origin",
            ORIGIN,
            "--db",
            ":memory:",
            "--json",
        )
        srv_dev = lab.device(router=None if server_nat == "none" else lab.router(nat=server_nat))
        cli_dev = lab.device(router=None if client_nat == "none" else lab.router(nat=client_nat))
        base: dict[str, Any] = {
            "server_nat": server_nat,
            "client_nat": client_nat,
            "lookup": lookup,
            "relay_url": url,
            "server_public_ip": srv_dev.public_ip,
        }
        server = None
        try:
            # Peers must not race the DNS server's startup (start_relay waited for the relay).
            serving = await dns.recv(timeout=30)
            pkarr_url = serving["pkarr_url"]
            server = await srv_dev.spawn_python(
                "lab.discovery_peer", "serve", srv_dev.ip, url, pkarr_url
            )
            hello = await server.recv(timeout=60)
            base["published"] = hello["published"]
            base["publish_s"] = hello["publish_s"]
            lookup_args = (
                ["--lookup", "dns", "--dns", serving["dns"], "--origin", ORIGIN]
                if lookup == "dns"
                else ["--lookup", "pkarr", "--pkarr-url", pkarr_url]
            )
            result = await cli_dev.run_json(
                "lab.discovery_peer",
                "dial",
                cli_dev.ip,
                url,
                hello["id"],
                str(wait_direct),
                *lookup_args,
                timeout=60 + wait_direct,
            )
            return DiscoveryResult(
                established=bool(result.get("established")),
                direct=bool(result.get("direct")),
                connect_s=result.get("connect_s"),
                time_to_direct=result.get("time_to_direct"),
                lookup_s=result.get("lookup_s"),
                resolved=list(result.get("resolved", [])),
                **base,
            )
        except Exception as exc:
            return DiscoveryResult(
                established=False,
                direct=False,
                connect_s=None,
                time_to_direct=None,
                error=repr(exc),
                **base,
            )
        finally:
            if server is not None:
                await server.stop()
            await dns.stop()
            await relay.stop()
