"""An aioiroh endpoint that is found by its EndpointId alone, through the lab's DNS server.

``python -m lab.discovery_peer serve BIND_IP RELAY_URL PKARR_URL`` publishes itself with a
:class:`PkarrPublisher` (its home relay and its direct addresses, the QAD-learned public one
included), waits until the DNS server has accepted a packet holding all of them, prints
``{"id", "addrs", "published": {"relay_urls", "direct_addresses"}, "publish_s"}`` and echoes
bi-streams until stdin closes.

``python -m lab.discovery_peer dial BIND_IP RELAY_URL PEER_ID WAIT --lookup dns --dns IP:PORT
--origin ORIGIN`` (or ``--lookup pkarr --pkarr-url URL``) connects to ``PEER_ID`` with no
addresses and no relay URL for it: everything about the peer comes from the lookup (UDP DNS
with :class:`DnsAddressLookup`, or an HTTP GET with :class:`PkarrResolver`). ``RELAY_URL`` is
only the dialer's own home relay (for QAD and its own reachability). It echoes once, watches
for up to WAIT seconds for a direct path, and prints the fields of :mod:`lab.iroh_peer`'s
report plus ``lookup_s`` (seconds from the dial to the first lookup answer) and ``resolved``
(what the lookup answered).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator

from aioiroh import Endpoint, RelayMode, SecretKey
from aioiroh.address_lookup.base import AddressLookup, AddressLookupItem
from aioiroh.address_lookup.dns import DnsAddressLookup
from aioiroh.address_lookup.pkarr import PkarrPublisher, PkarrResolver
from aioiroh.base.key import EndpointId
from aioiroh.dns.endpoint_info import EndpointInfo
from lab.iroh_peer import (
    ALPN,
    QAD_WAIT,
    emit,
    ours_echo_forever,
    report,
    stdin_closed,
    wait_direct,
)

# Longest the server waits for the DNS server to hold its full record.
PUBLISH_WAIT = 20.0
CONNECT_TIMEOUT = 20.0


def info_json(info: EndpointInfo) -> dict[str, list[str]]:
    return {
        "relay_urls": [str(u) for u in info.relay_urls],
        "direct_addresses": [f"{h}:{p}" for h, p in info.direct_addresses],
    }


class RecordingLookup:
    """Passes everything to ``inner`` and keeps what its resolves answered (and when)."""

    def __init__(self, inner: AddressLookup) -> None:
        self.inner = inner
        self.items: list[AddressLookupItem] = []
        self.first_at: float | None = None

    def publish(self, info: EndpointInfo) -> None:
        self.inner.publish(info)

    def resolve(self, endpoint_id: EndpointId) -> AsyncIterator[AddressLookupItem] | None:
        stream = self.inner.resolve(endpoint_id)
        return None if stream is None else self._record(stream)

    async def _record(
        self, stream: AsyncIterator[AddressLookupItem]
    ) -> AsyncIterator[AddressLookupItem]:
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            async for item in stream:
                if self.first_at is None:
                    self.first_at = time.monotonic()
                self.items.append(item)
                yield item

    async def aclose(self) -> None:
        await self.inner.aclose()


async def serve(ip: str, relay: str, pkarr_url: str) -> None:
    key = SecretKey.generate()
    publisher = PkarrPublisher(key, pkarr_url, relay_only=False)
    ep = await Endpoint.bind(
        key,
        alpns=[ALPN],
        bind_addr=f"{ip}:0",
        bind_addr_v6=False,
        relay_mode=RelayMode.custom([relay]),
        address_lookup=[publisher],
    )

    async def full_record_published() -> EndpointInfo:
        """The first accepted packet with our home relay and every QAD-learned address."""
        while True:
            count = publisher.published_count
            packet = publisher.last_packet
            if packet is not None:
                info = packet.endpoint_info()
                public = set(await ep.reflexive_addresses(timeout=0))
                if info.relay_urls and public <= set(info.direct_addresses):
                    return info
            await publisher.wait_published(count + 1)

    try:
        start = time.monotonic()
        await asyncio.wait_for(ep.online(), 30)
        await ep.reflexive_addresses(timeout=QAD_WAIT)
        info = await asyncio.wait_for(full_record_published(), PUBLISH_WAIT)
        emit(
            {
                "id": str(ep.id),
                "addrs": [f"{h}:{p}" for h, p in ep.direct_addresses()],
                "published": info_json(info),
                "publish_s": time.monotonic() - start,
            }
        )
        loop_task = asyncio.create_task(ours_echo_forever(ep))
        await stdin_closed()
        loop_task.cancel()
    finally:
        await ep.close()


async def dial(ip: str, relay: str, peer: str, wait: float, args: argparse.Namespace) -> None:
    lookup: AddressLookup
    if args.lookup == "dns":
        lookup = DnsAddressLookup(args.origin, _host_port(args.dns))
    else:
        lookup = PkarrResolver(args.pkarr_url)
    recording = RecordingLookup(lookup)
    ep = await Endpoint.bind(
        bind_addr=f"{ip}:0",
        bind_addr_v6=False,
        relay_mode=RelayMode.custom([relay]),
        address_lookup=[recording],
    )
    try:
        await asyncio.wait_for(ep.online(), 30)
        await ep.reflexive_addresses(timeout=QAD_WAIT)
        start = time.monotonic()
        # The id alone: addresses and relay URL must come from the DNS server.
        conn = await ep.connect(EndpointId.parse(peer), ALPN, timeout=CONNECT_TIMEOUT)
        connect_s = time.monotonic() - start
        send, recv = await conn.open_bi()
        await send.write_all(b"ping")
        await send.finish()
        assert await recv.read_to_end(100) == b"ping"
        direct_at = await wait_direct(conn, start, wait)
        conn.close(0, b"done")
        assert recording.first_at is not None, "connected without a lookup answer"
        report(
            connect_s,
            direct_at,
            lookup_s=recording.first_at - start,
            resolved=[
                {"provenance": item.provenance, **info_json(item.endpoint_info)}
                for item in recording.items
            ],
        )
    finally:
        await ep.close()


def _host_port(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.discovery_peer")
    parser.add_argument("role", choices=["serve", "dial"])
    parser.add_argument("ip")
    parser.add_argument("relay")
    parser.add_argument("rest", nargs="*", help="serve: PKARR_URL; dial: PEER_ID WAIT")
    parser.add_argument("--lookup", choices=["dns", "pkarr"], default="dns")
    parser.add_argument("--pkarr-url", default=None)
    parser.add_argument("--dns", default=None, help="the DNS server's IP:PORT (UDP)")
    parser.add_argument("--origin", default=None)
    args = parser.parse_args(argv)
    if args.role == "serve":
        asyncio.run(serve(args.ip, args.relay, args.rest[0]))
        return
    if args.lookup == "dns" and not (args.dns and args.origin):
        parser.error("--lookup dns needs --dns and --origin")
    if args.lookup == "pkarr" and not args.pkarr_url:
        parser.error("--lookup pkarr needs --pkarr-url")
    asyncio.run(dial(args.ip, args.relay, args.rest[0], float(args.rest[1]), args))


if __name__ == "__main__":
    main(sys.argv[1:])
