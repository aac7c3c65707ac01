"""The interop oracle: helpers around PyPI ``iroh`` (Rust iroh via its official bindings)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import iroh
import pytest

from aioiroh.base.endpoint_addr import EndpointAddr
from aioiroh.base.key import PublicKey, SecretKey

RustFactory = Callable[..., Awaitable[iroh.Endpoint]]


async def bind_rust(
    alpns: list[bytes] | None = None,
    *,
    secret_key: SecretKey | None = None,
    relay_urls: list[str] | None = None,
    bind_addr: str = "127.0.0.1:0",
) -> iroh.Endpoint:
    """A Rust endpoint with the minimal preset: no address lookup, relays only if given."""
    builder = iroh.EndpointBuilder()
    builder.apply_minimal()
    if relay_urls:
        builder.relay_mode(iroh.RelayMode.custom_from_urls(relay_urls))
    else:
        builder.relay_mode(iroh.RelayMode.disabled())
    builder.bind_addr(bind_addr)
    builder.alpns(list(alpns or []))
    if secret_key is not None:
        builder.secret_key(secret_key.to_bytes())
    return await builder.bind()


def _split_host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def addr_from_rust(ep: iroh.Endpoint, *, loopback_only: bool = True) -> EndpointAddr:
    """Our EndpointAddr for a Rust endpoint (its bound sockets; ``[::]`` mapped to ``::1``)."""
    addrs: list[tuple[str, int]] = []
    for text in ep.bound_sockets():
        host, port = _split_host_port(str(text))
        if host == "::":
            host = "::1"
        elif host == "0.0.0.0":
            host = "127.0.0.1"
        if loopback_only and not (host.startswith("127.") or host == "::1"):
            continue
        addrs.append((host, port))
    rust_addr = ep.addr()
    relay = rust_addr.relay_url()
    return EndpointAddr(PublicKey.parse(str(ep.id())), relay, addrs)


def addr_to_rust(addr: EndpointAddr, *, with_relay: bool = True) -> iroh.EndpointAddr:
    ips = [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in addr.direct_addresses]
    relay = str(addr.relay_url) if (with_relay and addr.relay_url is not None) else None
    return iroh.EndpointAddr(iroh.EndpointId.from_string(str(addr.id)), relay, ips)


@pytest.fixture
async def rust_endpoint() -> AsyncIterator[RustFactory]:
    """A factory of Rust endpoints, all closed at teardown."""
    made: list[iroh.Endpoint] = []

    async def make(*args: object, **kwargs: object) -> iroh.Endpoint:
        ep = await bind_rust(*args, **kwargs)  # type: ignore[arg-type]
        made.append(ep)
        return ep

    yield make
    for ep in made:
        await ep.close()
