"""Every `aioiroh` command takes --json, and endpoint commands take --relay/--secret-key."""

from __future__ import annotations

import click

from aioiroh.cli.main import _load, cli

SERVERS = {"relay", "dns-server"}  # servers have no endpoint identity or relay to pick


def leaves(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, cmd in group.commands.items():
        full = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            out.extend(leaves(cmd, full + " "))
        else:
            out.append((full, cmd))
    return out


def test_consistent_flags() -> None:
    _load()
    commands = leaves(cli)
    assert len(commands) >= 12
    for name, cmd in commands:
        flags = {opt for p in cmd.params for opt in getattr(p, "opts", [])}
        assert "--json" in flags, name
        if name.split()[0] not in SERVERS and name != "id":
            assert "--relay" in flags, name
            assert "--secret-key" in flags, name
