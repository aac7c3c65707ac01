"""Flags and helpers shared by the endpoint commands: keys, relays, JSON output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from ..base.key import SecretKey
from ..endpoint.relay_mode import RelayMode

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
