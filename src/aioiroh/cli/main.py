"""``aioiroh`` entry point: one click group; each cli module contributes its commands.

Every module in ``_COMMAND_MODULES`` exposes ``commands: list[click.Command]``. Modules are
imported lazily so ``aioiroh --help`` stays fast and a broken server module cannot break the
endpoint commands.
"""

from __future__ import annotations

import importlib
import logging

import click

_COMMAND_MODULES = (
    "aioiroh.cli.endpoint",
    "aioiroh.cli.relay",
    "aioiroh.cli.dns_server",
    "aioiroh.cli.http",
    "aioiroh.cli.pipe",
    "aioiroh.cli.forward",
    "aioiroh.cli.transfer",
    "aioiroh.cli.ping",
    "aioiroh.cli.doctor",
    "aioiroh.cli.gossip",
)


@click.group()
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """aioiroh: peer-to-peer QUIC dialed by public key."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _load() -> None:
    for name in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        for command in getattr(mod, "commands", []):
            cli.add_command(command)


def main() -> None:
    _load()
    cli()


if __name__ == "__main__":
    main()
