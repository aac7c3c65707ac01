"""``aioiroh dns-server``: run the pkarr relay and DNS server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path

import click

__all__ = ["commands", "dns_server"]


@click.command("dns-server")
@click.option(
    "--dev", is_flag=True, help="Development mode: no PUT rate limit (bind with --bind as usual)."
)
@click.option("--port", type=int, default=None, help="Port for HTTP and DNS (UDP+TCP).")
@click.option("--http-port", type=int, default=None, help="HTTP port (default: --port).")
@click.option("--dns-port", type=int, default=None, help="DNS port (default: --port).")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Bind address.")
@click.option("--origin", "origins", multiple=True, help="Zone origin (repeatable).")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file (default: ./iroh-dns.sqlite; ':memory:' for none).",
)
@click.option(
    "--http-timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Close HTTP connections without a complete request header after this many seconds.",
)
@click.option(
    "--max-tcp-per-ip",
    type=int,
    default=16,
    show_default=True,
    help="Concurrent DNS-over-TCP connections allowed from one IP.",
)
@click.option(
    "--udp-rrl",
    type=float,
    default=20.0,
    show_default=True,
    help="UDP DNS responses per second per /24 (/56); over it, slip to truncated replies. 0 = off.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON line once serving.")
@click.option(
    "--dht",
    is_flag=True,
    help="Resolve keys missing locally through the Mainline DHT (cached 300 s).",
)
@click.option(
    "--dht-bootstrap",
    multiple=True,
    metavar="HOST:PORT",
    help="DHT bootstrap node (repeatable; default: the well-known routers).",
)
def dns_server(
    dev: bool,
    port: int | None,
    http_port: int | None,
    dns_port: int | None,
    bind: str,
    origins: tuple[str, ...],
    db: Path | None,
    http_timeout: float,
    max_tcp_per_ip: int,
    udp_rrl: float,
    as_json: bool,
    dht: bool,
    dht_bootstrap: tuple[str, ...],
) -> None:
    """Serve pkarr at http://HOST:PORT/pkarr/<z32> and DNS for _iroh.<z32>.ORIGIN."""
    from ..dns_server.config import DEFAULT_ORIGIN, DnsServerConfig
    from ..dns_server.server import DnsServer

    base = port if port is not None else 8080
    store_path: Path | None = Path("iroh-dns.sqlite") if db is None else db
    if store_path is not None and str(store_path) == ":memory:":
        store_path = None
    config = DnsServerConfig(
        origins=origins or (DEFAULT_ORIGIN,),
        http_host=bind,
        http_port=http_port if http_port is not None else base,
        dns_host=bind,
        dns_port=dns_port if dns_port is not None else (base if port is not None else 5300),
        store_path=store_path,
        put_rate=None if dev else 4.0,
        dht_fallback=dht,
        dht_bootstrap=tuple(_host_port(b) for b in dht_bootstrap) or None,
        http_keepalive_timeout=http_timeout,
        body_timeout=http_timeout,
        max_tcp_per_ip=max_tcp_per_ip,
        udp_rrl_rate=udp_rrl or None,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with DnsServer(config) as server:
            click.echo(f"pkarr: {server.pkarr_url}", err=True)
            click.echo(f"dns: {server.dns_addr[0]}:{server.dns_addr[1]} (udp+tcp)", err=True)  # type: ignore[index]
            click.echo(f"origins: {' '.join(config.origins)}", err=True)
            if as_json:
                host, dport = server.dns_addr  # type: ignore[misc]
                line = {
                    "event": "serving",
                    "pkarr_url": server.pkarr_url,
                    "dns": f"{host}:{dport}",
                    "origins": list(config.origins),
                }
                click.echo(json.dumps(line))
            await stop.wait()

    asyncio.run(run())


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {text!r}", param_hint="--dht-bootstrap")
    return host.strip("[]"), int(port)


commands = [dns_server]
