"""The iroh NAT matrix: one connection per (server NAT, client NAT) cell, in namespaces.

Each cell builds a fresh lab: our relay on the internet segment, the server and the client each
behind a router of the given NAT kind ("none" = a public device). The client dials the server's
relay URL and whatever direct addresses the server knows about itself, exchanges an echo, then
watches for a direct path. The relay runs its QUIC address discovery (QAD) service on UDP 7842,
so aioiroh peers behind NAT learn their public mapping from it. Rust peers are told their public
address (``add_external_addr``) where their NAT keeps ports instead, because they check a
relay's QAD certificate against web PKI roots and so cannot use a lab relay's QAD
(natlab-recipe §7).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from lab.harness import NAT_KINDS, Lab
from lab.relay import start_relay

# Cells where Rust iroh reaches a direct path in its own patchbay tests.
RUST_DIRECT_CELLS = {
    (s, c)
    for s in NAT_KINDS
    for c in NAT_KINDS
    if (s, c) not in {("moderate", "strict"), ("strict", "moderate"), ("strict", "strict")}
}


@dataclass(frozen=True, slots=True)
class CellResult:
    server_nat: str
    client_nat: str
    server_impl: str
    client_impl: str
    established: bool
    direct: bool
    connect_s: float | None
    time_to_direct: float | None
    error: str | None = None
    hard_nat: dict[str, int] | None = None
    """The dialer's birthday attempt counters (``sent``, ``matched``), if one ran."""

    def label(self) -> str:
        if not self.established:
            return "FAILED"
        if self.direct:
            return f"direct {self.time_to_direct:.2f}s"
        return "relayed"


def _options(impl: str, nat: str, public_ip: str, hard_nat: bool) -> list[str]:
    """Peer options: a Rust peer is told its public IP (for ``add_external_addr``) behind NAT
    kinds that keep the bound source port, the only ones where ``public_ip:<bound port>`` is
    the true mapping (aioiroh peers learn theirs by QAD); aioiroh peers may join the birthday
    hard-NAT attempt."""
    if impl == "rust":
        return ["--public-ip", public_ip] if nat in ("open", "moderate") else []
    return ["--hard-nat"] if hard_nat else []


async def run_cell(
    server_nat: str,
    client_nat: str,
    server_impl: str,
    client_impl: str,
    wait_direct: float,
    *,
    hard_nat: bool = False,
) -> CellResult:
    """One cell in a fresh lab. ``hard_nat``: aioiroh peers join the birthday attempt."""
    async with Lab() as lab:
        relay, url = await start_relay(lab)
        srv_dev = lab.device(router=None if server_nat == "none" else lab.router(nat=server_nat))
        cli_dev = lab.device(router=None if client_nat == "none" else lab.router(nat=client_nat))
        server = None
        try:
            server = await srv_dev.spawn_python(
                "lab.iroh_peer",
                server_impl,
                "serve",
                srv_dev.ip,
                url,
                *_options(server_impl, server_nat, srv_dev.public_ip, hard_nat),
            )
            hello = await server.recv(timeout=40)
            addrs = list(hello["addrs"])
            result = await cli_dev.run_json(
                "lab.iroh_peer",
                client_impl,
                "dial",
                cli_dev.ip,
                url,
                hello["id"],
                json.dumps(addrs),
                str(wait_direct),
                *_options(client_impl, client_nat, cli_dev.public_ip, hard_nat),
                timeout=60,
            )
            return CellResult(
                server_nat,
                client_nat,
                server_impl,
                client_impl,
                bool(result.get("established")),
                bool(result.get("direct")),
                result.get("connect_s"),
                result.get("time_to_direct"),
                hard_nat=result.get("hard_nat"),
            )
        except Exception as exc:
            return CellResult(
                server_nat,
                client_nat,
                server_impl,
                client_impl,
                False,
                False,
                None,
                None,
                repr(exc),
            )
        finally:
            if server is not None:
                await server.stop()
            await relay.stop()
