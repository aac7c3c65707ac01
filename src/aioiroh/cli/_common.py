"""Flags and helpers shared by the endpoint commands: keys, relays, JSON output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from ..base.key import PublicKey, SecretKey
from ..endpoint.endpoint import AcceptFilter
from ..endpoint.relay_mode import RelayMode
from ..errors import IrohError

DEFAULT_KEY_FILE = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / (
    "aioiroh/secret.key"
)


def load_or_create_key(path: Path | None, *, create: bool = True) -> SecretKey:
    """Read a hex secret key file; create it (mode 0600) if missing and ``create``."""
    if path is None:
        return SecretKey.generate()
    if path.exists():
        return SecretKey.parse(path.read_text().strip())
    if not create:
        raise click.ClickException(f"no key file at {path}")
    key = SecretKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.to_bytes().hex() + "\n")
    return key


def relay_mode_from(relays: tuple[str, ...]) -> RelayMode:
    """``--relay URL`` (repeatable); ``--relay disabled`` or none at all disables relays."""
    urls = [r for r in relays if r != "disabled"]
    if not urls:
        return RelayMode.disabled()
    return RelayMode.custom(urls)


def relay_option(f: Any) -> Any:
    return click.option(
        "--relay",
        "relays",
        multiple=True,
        metavar="URL",
        help="Relay URL (repeatable); 'disabled' for none (default: none).",
    )(f)


def key_option(f: Any) -> Any:
    return click.option(
        "--secret-key",
        "secret_key_file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Secret key file (hex); a fresh key if not given.",
    )(f)


def hard_nat_option(f: Any) -> Any:
    return click.option(
        "--hard-nat",
        is_flag=True,
        help="Try aioiroh's birthday hard-NAT traversal if no direct path; both peers must use it.",
    )(f)


def json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(f)


def emit(as_json: bool, obj: dict[str, Any], text: str) -> None:
    """Print ``obj`` as one JSON line or ``text`` for people; always flushed."""
    click.echo(json.dumps(obj) if as_json else text)
    sys.stdout.flush()


def note(text: str) -> None:
    """Human messages go to stderr so stdout stays clean for data."""
    click.echo(text, err=True)


# --- Presets: which network an endpoint command reaches (self-contained block) -------------
# The CLI uses n0's public network by default, as dumbpipe and sendme do; the library's bare
# Endpoint.bind() stays local. AIOIROH_DEFAULT_PRESET changes the default (the test suite sets
# it to "minimal" so no child process can reach the internet by accident).
DEFAULT_PRESET_ENV = "AIOIROH_DEFAULT_PRESET"


def default_preset_name() -> str:
    """The preset used without ``--preset``: $AIOIROH_DEFAULT_PRESET, else ``n0``."""
    return os.environ.get(DEFAULT_PRESET_ENV) or "n0"


def preset_options(f: Any) -> Any:
    """The preset block: ``--preset``, ``--relay``, ``--dns-origin/-server``, ``--pkarr-relay``."""
    from ..presets import PRESETS

    options = [
        click.option(
            "--preset",
            "preset_name",
            type=click.Choice(list(PRESETS)),
            default=None,
            help="Network to use: n0's public relays and discovery (n0, the default), the same "
            "without relays (n0-no-relay), or nothing beyond this machine (minimal).",
        ),
        click.option(
            "--relay",
            "relays",
            multiple=True,
            metavar="URL",
            help="Relay URL (repeatable), replacing the preset's relays; 'disabled' for none.",
        ),
        click.option(
            "--dns-origin",
            default=None,
            metavar="ORIGIN",
            help="Look endpoints up in DNS under ORIGIN ('none' to turn DNS lookup off).",
        ),
        click.option(
            "--dns-server",
            default=None,
            metavar="IP:PORT",
            help="DNS server for --dns-origin lookups (default: the system's resolvers).",
        ),
        click.option(
            "--pkarr-relay",
            default=None,
            metavar="URL",
            help="pkarr relay to publish to and resolve from ('none' to turn pkarr off).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def preset_from(
    preset_name: str | None,
    relays: tuple[str, ...] = (),
    dns_origin: str | None = None,
    dns_server: str | None = None,
    pkarr_relay: str | None = None,
) -> Any:
    """The :class:`~aioiroh.presets.Preset` the preset options describe (resolved now)."""
    from ..base.endpoint_addr import parse_socket_addr
    from ..errors import IrohError
    from ..presets import by_name

    try:
        base = by_name(preset_name or default_preset_name()).resolve()
        changes: dict[str, Any] = {}
        if relays:
            urls = tuple(r for r in relays if r != "disabled")
            if urls and len(urls) != len(relays):
                raise click.BadParameter("'disabled' cannot be combined with relay URLs")
            changes["relays"] = urls
        if dns_origin is not None:
            changes["dns_origin"] = None if dns_origin == "none" else dns_origin
        if dns_server is not None:
            addr = parse_socket_addr(dns_server)
            changes["dns_nameserver"] = (str(addr[0]), addr[1])
        if pkarr_relay is not None:
            changes["pkarr_relay"] = None if pkarr_relay == "none" else pkarr_relay
        return base.replace(**changes) if changes else base
    except IrohError as exc:
        raise click.BadParameter(str(exc)) from None


# -- allowlists (--allow / --allow-file) ---------------------------------------------------


def allow_options(f: Any) -> Any:
    """``--allow ENDPOINT_ID`` (repeatable) and ``--allow-file PATH`` for listening commands."""
    f = click.option(
        "--allow-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="File of EndpointIds allowed to connect, one per line ('#' comments).",
    )(f)
    return click.option(
        "--allow",
        "allow",
        multiple=True,
        help="Only accept this EndpointId (repeatable); default: anyone who knows ours.",
    )(f)


def accept_filter_from(allow: tuple[str, ...], allow_file: Path | None) -> AcceptFilter | None:
    """The accept filter for ``--allow``/``--allow-file``; None when neither was given."""
    if not allow and allow_file is None:
        return None
    texts = list(allow)
    if allow_file is not None:
        for line in allow_file.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                texts.append(line)
    allowed: set[PublicKey] = set()
    for text in texts:
        try:
            allowed.add(PublicKey.parse(text))
        except IrohError as exc:
            raise click.BadParameter(f"not an EndpointId: {text!r} ({exc})") from None
    if not allowed:
        raise click.BadParameter("the allowlist is empty: nobody could connect")
    frozen = frozenset(allowed)

    def accept(remote_id: PublicKey, alpn: bytes) -> bool:
        return remote_id in frozen

    return accept
