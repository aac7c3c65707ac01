"""``aioiroh doctor``: a network report to paste into a bug.

The report is a list of sections, each produced by one probe (see ``PROBES``): environment,
local addresses, relay latencies (HTTP ``/ping``), the home relay an endpoint picks, IPv4/IPv6
reachability of the relays, the reflexive address from QAD (each relay's QUIC address discovery
service, asked from one UDP socket), and a NAT guess from those answers. Probes that cannot
answer say "not available" rather than guessing; adding one means writing a coroutine and
listing it in ``PROBES``.

The relays contacted are the preset's (n0's by default, as for ``listen``) or those given
with ``--relay``; with ``--preset minimal`` or ``--relay disabled`` the report is local only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import platform
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import click

from ..base.endpoint_addr import parse_socket_addr
from ..base.key import SecretKey
from ..endpoint.endpoint import Endpoint
from ..endpoint.relay_mode import RelayMode
from ..errors import IrohError
from ..portmapper import GatewayDiscovery, PortMapError, PortMapper, default_gateway
from ..presets import Preset
from ..relay.relay_map import DEFAULT_RELAY_QUIC_PORT
from ..socket.interfaces import local_addresses
from ..socket.qad import QadError
from ..socket.qad import probe_qad as qad_ask
from ..socket.socket import MagicSocket
from ._common import emit, json_option, key_option, preset_from, preset_options
from .pipe import bind_option, run_main, secret_key_from

NOT_AVAILABLE: Final = "not available"
# HTTP /ping requests per relay; the median is reported.
RELAY_PINGS: Final = 5
RELAY_TIMEOUT: Final = 5.0
HOME_RELAY_TIMEOUT: Final = 10.0
TCP_PROBE_TIMEOUT: Final = 3.0
QAD_TIMEOUT: Final = 3.0


@dataclass
class Context:
    """What every probe may use."""

    relays: tuple[str, ...]
    key_file: Path | None
    bind: str
    results: dict[str, Any] = field(default_factory=dict)
    qad_port: int = DEFAULT_RELAY_QUIC_PORT
    #: Ask the default gateway for a port mapping (sends packets to the router: opt-in).
    port_mapping: GatewayDiscovery | None = None


Probe = Callable[[Context], Awaitable[dict[str, Any]]]


# -- probes -------------------------------------------------------------------------------


async def probe_environment(ctx: Context) -> dict[str, Any]:
    from .. import __version__

    return {
        "aioiroh": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def _classify(addr: str) -> str:
    ip = ipaddress.ip_address(addr)
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_private:
        return "private"
    return "global"


async def probe_local(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for family, v6 in (("ipv4", False), ("ipv6", True)):
        addrs = await asyncio.to_thread(local_addresses, v6)
        out[family] = [{"addr": a, "scope": _classify(a)} for a in addrs]
    return out


async def _relay_ping(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    target = url.rstrip("/") + "/ping"
    samples: list[float] = []
    error = None
    for _ in range(RELAY_PINGS):
        start = time.perf_counter()
        try:
            async with session.get(target) as resp:
                await resp.read()
                if resp.status != 200:
                    error = f"HTTP {resp.status}"
                    continue
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = str(exc) or type(exc).__name__
            break
        samples.append(time.perf_counter() - start)
    if not samples:
        return {"url": url, "ok": False, "error": error}
    ms = [s * 1000 for s in samples]
    return {
        "url": url,
        "ok": True,
        "latency_ms": statistics.median(ms),
        "min_ms": min(ms),
        "samples": len(ms),
    }


async def probe_relay_latency(ctx: Context) -> dict[str, Any]:
    if not ctx.relays:
        return {"relays": [], "note": "no relays configured (use --relay URL)"}
    timeout = aiohttp.ClientTimeout(total=RELAY_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        found = await asyncio.gather(*(_relay_ping(session, u) for u in ctx.relays))
    return {"relays": sorted(found, key=lambda r: r.get("latency_ms", float("inf")))}


async def probe_home_relay(ctx: Context) -> dict[str, Any]:
    if not ctx.relays:
        return {"home_relay": None, "note": "no relays configured"}
    answered = [r for r in ctx.results.get("relay_latency", {}).get("relays", []) if r.get("ok")]
    if not answered:
        # Waiting out the relay client's timeout would only repeat what /ping already said.
        return {"home_relay": None, "error": "no relay answered /ping"}
    try:
        ep = await Endpoint.bind(
            secret_key_from(ctx.key_file),
            bind_addr=ctx.bind,
            relay_mode=RelayMode.custom(ctx.relays),
        )
    except (IrohError, ValueError, OSError) as exc:
        return {"home_relay": None, "error": f"cannot bind endpoint: {exc}"}
    try:
        await asyncio.wait_for(ep.online(), HOME_RELAY_TIMEOUT)
        home = ep.home_relay
        return {
            "home_relay": str(home) if home is not None else None,
            "endpoint_id": str(ep.id),
            "bound_sockets": [
                f"{h}:{p}" if ":" not in h else f"[{h}]:{p}" for h, p in ep.bound_sockets()
            ],
        }
    except TimeoutError:
        return {"home_relay": None, "error": f"no relay connection within {HOME_RELAY_TIMEOUT:g}s"}
    finally:
        await ep.close()


async def _tcp_reach(host: str, port: int, family: socket.AddressFamily) -> bool | None:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    except OSError:
        return None  # the relay has no address of this family
    for *_, sockaddr in infos:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(str(sockaddr[0]), int(sockaddr[1])), TCP_PROBE_TIMEOUT
            )
        except (OSError, TimeoutError):
            continue
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return True
    return False


async def probe_reachability(ctx: Context) -> dict[str, Any]:
    """Whether each relay answers over IPv4 and over IPv6 (TCP to its HTTP port)."""
    local = ctx.results.get("local", {})
    out: dict[str, Any] = {}
    for family, fam in (("ipv4", socket.AF_INET), ("ipv6", socket.AF_INET6)):
        scopes = {a["scope"] for a in local.get(family, [])}
        per_relay = {}
        for url in ctx.relays:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            per_relay[url] = await _tcp_reach(parts.hostname or "", port, fam)
        out[family] = {
            "global_address": "global" in scopes,
            "relays": per_relay,
        }
    return out


async def probe_qad(ctx: Context) -> dict[str, Any]:
    """Ask every relay's QAD service, all from one UDP socket (so answers are comparable)."""
    if not ctx.relays:
        return {"reflexive_addresses": NOT_AVAILABLE, "why": "no relays configured"}
    ip, port = parse_socket_addr(ctx.bind)
    sock = MagicSocket(SecretKey.generate(), alpns=lambda: [], on_incoming=lambda d: None)
    try:
        if ip.version == 6:
            sock.bind(None, (str(ip), port))
        else:
            sock.bind((str(ip), port), None)
        per_relay: dict[str, str] = {}
        for url in ctx.relays:
            host = urlsplit(url).hostname or ""
            try:
                h, p = await qad_ask(sock, host, ctx.qad_port, timeout=QAD_TIMEOUT)
                per_relay[url] = f"[{h}]:{p}" if ":" in h else f"{h}:{p}"
            except QadError as exc:
                per_relay[url] = f"error: {exc}"
    finally:
        sock.close()
    found = sorted({v for v in per_relay.values() if not v.startswith("error")})
    return {
        "reflexive_addresses": found or NOT_AVAILABLE,
        "per_relay": per_relay,
        "local_socket": [f"{h}:{p}" for h, p in sock.local_addrs()],
    }


async def probe_nat(ctx: Context) -> dict[str, Any]:
    """Mapping behaviour from the QAD answers: one public port for all relays or not."""
    per_relay = ctx.results.get("qad", {}).get("per_relay", {})
    answers = [v for v in per_relay.values() if not v.startswith("error")]
    if len(answers) < 2:
        return {"nat": NOT_AVAILABLE, "why": "needs QAD answers from two relays"}
    if len(set(answers)) == 1:
        return {"nat": "endpoint-independent mapping (holepunching works well)"}
    return {"nat": "endpoint-dependent mapping (symmetric NAT; holepunching is hard)"}


async def probe_port_mapping(ctx: Context) -> dict[str, Any]:
    """Map a fresh UDP port on the gateway (PCP, NAT-PMP, UPnP), report it, release it.

    The gateway's external address is compared with the QAD answers: when they differ there
    is a second NAT above the router (double NAT).
    """
    if ctx.port_mapping is None:
        return {"port_mapping": NOT_AVAILABLE, "why": "not asked (--port-mapping)"}
    ip, _port = parse_socket_addr(ctx.bind)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0" if ip.version == 6 else str(ip), 0))
        mapper = PortMapper(sock.getsockname()[1], gateway=ctx.port_mapping, lease=120)
        try:
            mapping = await mapper.map_once()
        except PortMapError as exc:
            return {"port_mapping": NOT_AVAILABLE, "why": str(exc)}
        finally:
            await mapper.close()
    out: dict[str, Any] = {"port_mapping": mapping.to_json()}
    reflexive = ctx.results.get("qad", {}).get("reflexive_addresses")
    if isinstance(reflexive, list):
        qad_ips = {a.rsplit(":", 1)[0].strip("[]") for a in reflexive}
        out["double_nat"] = mapping.external_addr[0] not in qad_ips
    return out


PROBES: Final[tuple[tuple[str, Probe], ...]] = (
    ("environment", probe_environment),
    ("local", probe_local),
    ("relay_latency", probe_relay_latency),
    ("home_relay", probe_home_relay),
    ("reachability", probe_reachability),
    ("qad", probe_qad),
    ("nat", probe_nat),
    ("port_mapping", probe_port_mapping),
)


# -- report -------------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    """The human form of the report."""
    lines = ["aioiroh doctor report"]
    env = report.get("environment", {})
    lines.append(
        f"  aioiroh {env.get('aioiroh')} on Python {env.get('python')}, {env.get('platform')}"
    )
    local = report.get("local", {})
    for fam in ("ipv4", "ipv6"):
        addrs = ", ".join(f"{a['addr']} ({a['scope']})" for a in local.get(fam, [])) or "none"
        lines.append(f"  local {fam}: {addrs}")
    lat = report.get("relay_latency", {})
    if not lat.get("relays"):
        lines.append(f"  relays: {lat.get('note', 'none')}")
    for r in lat.get("relays", []):
        if r["ok"]:
            lines.append(f"  relay {r['url']}: {r['latency_ms']:.1f} ms (median of {r['samples']})")
        else:
            lines.append(f"  relay {r['url']}: unreachable ({r['error']})")
    home = report.get("home_relay", {})
    lines.append(f"  home relay: {home.get('home_relay') or home.get('error') or home.get('note')}")
    reach = report.get("reachability", {})
    for fam in ("ipv4", "ipv6"):
        info = reach.get(fam, {})
        relays = info.get("relays", {})
        ok = [u for u, v in relays.items() if v]
        lines.append(
            f"  {fam}: global address {'yes' if info.get('global_address') else 'no'}"
            + (f", relays reachable {len(ok)}/{len(relays)}" if relays else "")
        )
    lines.append(f"  reflexive address (QAD): {report.get('qad', {}).get('reflexive_addresses')}")
    lines.append(f"  NAT behaviour: {report.get('nat', {}).get('nat')}")
    pm = report.get("port_mapping", {}).get("port_mapping")
    if isinstance(pm, dict):
        pm = f"{pm['protocol']} {pm['external_addr']} (lease {pm['lease_seconds']} s)"
    lines.append(f"  port mapping: {pm}")
    return "\n".join(lines)


async def build_report(ctx: Context) -> dict[str, Any]:
    for name, probe in PROBES:
        try:
            ctx.results[name] = await probe(ctx)
        except Exception as exc:  # one broken probe must not hide the rest of the report
            ctx.results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return ctx.results


async def _doctor(
    preset: Preset,
    key_file: Path | None,
    bind: str,
    as_json: bool,
    qad_port: int = DEFAULT_RELAY_QUIC_PORT,
    port_mapping: bool = False,
) -> int:
    report = await build_report(
        Context(
            preset.relays,
            key_file,
            bind,
            qad_port=qad_port,
            port_mapping=default_gateway if port_mapping else None,
        )
    )
    report["preset"] = preset.to_json()
    emit(as_json, report, f"{render(report)}\n  preset: {preset.name}")
    return 0


@click.command("doctor")
@key_option
@bind_option
@preset_options
@json_option
@click.option(
    "--qad-port",
    type=int,
    default=DEFAULT_RELAY_QUIC_PORT,
    show_default=True,
    help="UDP port of the relays' QUIC address discovery service.",
)
@click.option(
    "--port-mapping",
    is_flag=True,
    help="Also ask the default gateway for a port mapping (PCP, NAT-PMP, UPnP) and release it.",
)
def doctor_command(
    secret_key_file: Path | None,
    bind: str,
    preset_name: str | None,
    relays: tuple[str, ...],
    dns_origin: str | None,
    dns_server: str | None,
    pkarr_relay: str | None,
    as_json: bool,
    qad_port: int,
    port_mapping: bool,
) -> None:
    """Report relays, home relay, addresses and reachability (paste it into a bug).

    Reports against the preset's relays (n0's by default) or those given with --relay.
    """
    preset = preset_from(preset_name, relays, dns_origin, dns_server, pkarr_relay)
    run_main(_doctor(preset, secret_key_file, bind, as_json, qad_port, port_mapping))


commands: list[click.Command] = [doctor_command]
