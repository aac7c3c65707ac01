"""The NAT matrix's hard cells with a mapping router (miniupnpd) on the strict side(s).

Same shape as :func:`lab.matrix.run_cell`, but every strict router runs miniupnpd (PCP +
NAT-PMP, or UPnP IGD) and the peers are ``lab.portmap_peer`` (port mapping on).
"""

from __future__ import annotations

import json

from lab.harness import Lab
from lab.matrix import CellResult
from lab.miniupnpd import MiniUpnpd
from lab.relay import start_relay

MAPPED_CELLS = [("moderate", "strict"), ("strict", "moderate"), ("strict", "strict")]


async def run_mapped_cell(
    server_nat: str,
    client_nat: str,
    server_impl: str,
    client_impl: str,
    wait_direct: float,
    *,
    protocol: str = "pcp",
    port_mapping: bool = True,
) -> CellResult:
    """One cell in a fresh lab; strict routers grant mappings over ``protocol``.

    ``port_mapping=False`` runs plain ``lab.iroh_peer`` peers (the control: same routers,
    nobody asks for a mapping)."""
    peer = "lab.portmap_peer" if port_mapping else "lab.iroh_peer"
    daemons: list[MiniUpnpd] = []
    with Lab() as lab:
        relay, url = await start_relay(lab)
        stun_host = lab.host("stun")
        stun = await stun_host.spawn_python("lab.stun_server", stun_host.ip)
        server = None
        try:
            stun_port = (await stun.recv(timeout=10))["port"]
            devs = []
            for nat in (server_nat, client_nat):
                router = lab.router(nat=nat)
                if nat == "strict":
                    d = MiniUpnpd(router, (stun_host.ip, stun_port), protocol)
                    daemons.append(d)
                    await d.start()
                devs.append(lab.device(router=router))
            srv_dev, cli_dev = devs
            server = await srv_dev.spawn_python(peer, server_impl, "serve", srv_dev.ip, url)
            hello = await server.recv(timeout=40)
            result = await cli_dev.run_json(
                peer,
                client_impl,
                "dial",
                cli_dev.ip,
                url,
                hello["id"],
                json.dumps(list(hello["addrs"])),
                str(wait_direct),
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
            )
        except Exception as exc:
            return CellResult(
                server_nat, client_nat, server_impl, client_impl, False, False, None, None,
                repr(exc),
            )  # fmt: skip
        finally:
            if server is not None:
                await server.stop()
            await stun.stop()
            for d in daemons:
                await d.stop()
                d.cleanup()
            await relay.stop()


# (server impl, client impl, protocol the strict routers serve)
REPORT_RUNS = [("ours", "ours", "pcp"), ("ours", "ours", "upnp"), ("rust", "rust", "upnp")]


async def report(out: list[str], wait_direct: float = 3.0, concurrency: int = 3) -> bool:
    """The "with port mapping" matrix for ``make natlab``: every hard cell must go direct."""
    import asyncio
    import time

    sem = asyncio.Semaphore(concurrency)
    t0 = time.monotonic()

    async def one(key: tuple[str, str, str, str, str]) -> tuple[tuple[str, ...], CellResult]:
        async with sem:
            s, c, si, ci, proto = key
            return key, await run_mapped_cell(s, c, si, ci, wait_direct, protocol=proto)

    keys = [(s, c, si, ci, p) for (s, c) in MAPPED_CELLS for (si, ci, p) in REPORT_RUNS]
    results = dict(await asyncio.gather(*(one(k) for k in keys)))
    ok = True
    rows = []
    for s, c in MAPPED_CELLS:
        row = [f"{s} x {c}"]
        for run in REPORT_RUNS:
            r = results[(s, c, *run)]
            ok &= r.established and r.direct
            row.append(r.label() + ("" if r.direct else " <<"))
        rows.append(row)
    header = ["server x client", *(f"{a}-{b} {p}" for a, b, p in REPORT_RUNS)]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out.append(
        "\nHard cells with port mapping (miniupnpd on every strict router; '<<' = not direct)"
    )
    out.extend(fmt.format(*r).rstrip() for r in [header, ["-" * w for w in widths], *rows])
    out.append(f"port mapping matrix: {time.monotonic() - t0:.1f} s; namespaces removed")
    return ok
