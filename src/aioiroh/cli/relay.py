"""``aioiroh relay``: run a relay server."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import click

from ..base.key import PublicKey
from ..relay_server import AccessConfig, RateLimit, RelayServer, ServerConfig
from ..relay_server.qad import DEFAULT_QAD_PORT

__all__ = ["commands", "relay"]


def _keys(values: tuple[str, ...]) -> frozenset[PublicKey]:
    return frozenset(PublicKey.parse(v) for v in values)


@click.command()
@click.option("--dev", is_flag=True, help="Local development: plain HTTP on 127.0.0.1.")
@click.option(
    "--host", default=None, help="Address to bind (default 127.0.0.1 with --dev, else ::)."
)
@click.option(
    "--port",
    type=int,
    default=None,
    help="TCP port (default 3340 with --dev, 443 with TLS, else 80).",
)
@click.option(
    "--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None
)
@click.option(
    "--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None
)
@click.option("--metrics-port", type=int, default=None, help="Serve /metrics on this port too.")
@click.option("--allow", multiple=True, help="Only accept this EndpointId (repeatable).")
@click.option("--deny", multiple=True, help="Refuse this EndpointId (repeatable).")
@click.option("--token", multiple=True, help="Require this bearer token (repeatable).")
@click.option("--rate-limit", type=int, default=None, help="Per-client receive limit, bytes/s.")
@click.option("--max-clients", type=int, default=10_000, show_default=True)
@click.option(
    "--http-timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Close HTTP connections without a complete request header after this many seconds.",
)
@click.option(
    "--qad-port",
    type=int,
    default=None,
    help="UDP port of the QUIC address discovery service (default 7842; off with --dev "
    "unless given; 0 picks a free port).",
)
@click.option("--no-qad", is_flag=True, help="Do not run the QUIC address discovery service.")
@click.option(
    "--http-port",
    type=int,
    default=None,
    help="With TLS: plain-HTTP port for the captive-portal check /generate_204 (default 80).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON line once listening.")
def relay(
    dev: bool,
    host: str | None,
    port: int | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    metrics_port: int | None,
    allow: tuple[str, ...],
    deny: tuple[str, ...],
    token: tuple[str, ...],
    rate_limit: int | None,
    max_clients: int,
    http_timeout: float,
    qad_port: int | None,
    no_qad: bool,
    http_port: int | None,
    as_json: bool,
) -> None:
    """Run an iroh relay server (``--dev --port PORT`` serves http://127.0.0.1:PORT)."""
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if dev and tls_cert is not None:
        raise click.UsageError("--dev serves plain HTTP; drop --tls-cert/--tls-key")
    if port is None:
        port = 3340 if dev else (443 if tls_cert is not None else 80)
    if no_qad:
        qad_port = None
    elif qad_port is None and not dev:
        qad_port = DEFAULT_QAD_PORT
    if tls_cert is not None and http_port is None:
        http_port = 80
    config = ServerConfig(
        qad_port=qad_port,
        http_port=http_port,
        host=host or ("127.0.0.1" if dev else "::"),
        port=port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        metrics_port=metrics_port,
        max_clients=max_clients,
        http_keepalive_timeout=http_timeout,
        rate_limit=RateLimit(rate_limit) if rate_limit else None,
        access=AccessConfig(
            allow=_keys(allow) if allow else None,
            deny=_keys(deny),
            tokens=frozenset(token) if token else None,
        ),
    )
    asyncio.run(_serve(config, as_json))


async def _serve(config: ServerConfig, as_json: bool = False) -> None:
    server = RelayServer(config)
    await server.start()
    click.echo(f"relay listening on {server.http_url}", err=True)
    if server.qad_port is not None:
        click.echo(f"QAD (QUIC address discovery) on UDP port {server.qad_port}", err=True)
    if as_json:
        click.echo(
            json.dumps({"event": "listening", "url": server.http_url, "qad_port": server.qad_port})
        )
        sys.stdout.flush()
    if server.metrics_port is not None:
        click.echo(f"metrics on port {server.metrics_port}", err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop(graceful=True)


commands = [relay]
