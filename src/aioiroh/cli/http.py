"""``aioiroh serve-asgi module:app``: serve an ASGI application over HTTP/3 on iroh."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
import sys
from pathlib import Path
from typing import Any

import click

from ..endpoint.endpoint import AcceptFilter, Endpoint
from ..http import ALPN_H3, AsgiServer, LifespanFailed, serve
from ._common import (
    accept_filter_from,
    allow_options,
    emit,
    hard_nat_option,
    json_option,
    key_option,
    load_or_create_key,
    note,
    relay_mode_from,
)
from ._common import relay_option as _relay_option

__all__ = ["commands", "load_app"]


def load_app(spec: str, app_dir: str = ".") -> Any:
    """Import ``module:attribute`` (attribute may be dotted), with ``app_dir`` on sys.path."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise click.BadParameter(f"expected module:app, got {spec!r}")
    path = str(Path(app_dir).resolve())
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(f"cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise click.BadParameter(f"{module_name!r} has no attribute {attr!r}") from None
    return obj


async def _serve_asgi(
    app: Any,
    key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    as_json: bool,
    lifespan: str,
    limit: int,
    *,
    hard_nat: bool,
    accept_filter: AcceptFilter | None = None,
) -> None:
    ep = await Endpoint.bind(
        load_or_create_key(key_file),
        alpns=[ALPN_H3],
        bind_addr=bind,
        relay_mode=relay_mode_from(relays),
        hard_nat=hard_nat,
    )
    ep.set_accept_filter(accept_filter)

    def started(server: AsgiServer) -> None:
        ticket = str(ep.ticket())
        emit(
            as_json,
            {
                "event": "serving",
                "endpoint_id": str(ep.id),
                "base32": ep.id.to_base32(),
                "ticket": ticket,
            },
            ticket,
        )
        note(f"serving HTTP/3 on iroh+h3\n  url: iroh://{ep.id.to_base32()}/")

    # SIGTERM stops serving politely: in-flight requests end, lifespan shutdown runs.
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await serve(
            app,
            ep,
            lifespan=lifespan,  # type: ignore[arg-type]
            max_concurrent_requests=limit,
            started=started,
        )
    except LifespanFailed as exc:
        raise click.ClickException(f"application startup failed: {exc}") from None
    except asyncio.CancelledError:
        pass
    finally:
        await ep.close()


@click.command("serve-asgi")
@click.argument("app_spec", metavar="MODULE:APP")
@key_option
@click.option("--bind", default="0.0.0.0:0", show_default=True, help="IPv4 address to bind.")
@_relay_option
@hard_nat_option
@allow_options
@json_option
@click.option(
    "--lifespan",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="Run the ASGI lifespan protocol.",
)
@click.option(
    "--limit-concurrency",
    default=512,
    show_default=True,
    help="Requests handled at once; more get 503.",
)
@click.option("--app-dir", default=".", show_default=True, help="Directory added to sys.path.")
def serve_asgi(
    app_spec: str,
    secret_key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    hard_nat: bool,
    allow: tuple[str, ...],
    allow_file: Path | None,
    as_json: bool,
    lifespan: str,
    limit_concurrency: int,
    app_dir: str,
) -> None:
    """Serve an ASGI application (MODULE:APP) over HTTP/3 on iroh; prints the ticket."""
    accept_filter = accept_filter_from(allow, allow_file)
    app = load_app(app_spec, app_dir)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _serve_asgi(
                app,
                secret_key_file,
                bind,
                relays,
                as_json,
                lifespan,
                limit_concurrency,
                hard_nat=hard_nat,
                accept_filter=accept_filter,
            )
        )


commands = [serve_asgi]
