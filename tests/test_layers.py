"""The import direction of the package (style-anchors §8): lower layers never import higher ones.

Each module's ``aioiroh`` imports are read with ``ast`` and checked against ``LAYERS``: a module
may import its own package and packages of a lower layer, never a sibling package of the same
layer or anything above. ``TYPE_CHECKING`` imports count too (they are the same coupling).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "aioiroh"

# Package (dotted, below aioiroh) -> layer.
LAYERS: dict[str, int] = {
    "errors": -1,  # every layer raises our errors
    "_version": -1,
    "__version__": 8,  # the facade's version string, for the CLI
    "_metrics": 0,
    "util": 0,
    "base": 1,
    "defaults": 2,
    "tls": 2,
    "relay": 2,
    "relay.protocol": 2,
    "relay.relay_map": 2,
    "dns.endpoint_info": 2,
    "dns.pkarr": 2,
    "quic": 3,
    "relay.client": 3,
    "dns.resolver": 3,
    "dns": 3,
    "dht": 3,
    "address_lookup": 4,
    "portmapper": 4,
    "socket": 5,
    "endpoint": 6,
    "protocol": 7,
    "presets": 7,
    "http": 8,
    "gossip": 8,
    "blobs": 8,
    "relay_server": 8,
    "dns_server": 8,
    "cli": 9,
}
# Modules that may import anything (the public facade and the demo).
FREE = {"__init__", "cli.demo"}


def package_of(dotted: str) -> str:
    """The longest LAYERS key that is ``dotted`` or a prefix of it."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return key
    raise KeyError(dotted)


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, mod: str) -> set[str]:
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*anchor, *(node.module.split(".") if node.module else [])])
                if node.module is None:
                    found.update(".".join([*anchor, a.name]).strip(".") for a in node.names)
                    continue
                found.add(target.strip("."))
            elif node.module and node.module.startswith("aioiroh."):
                found.add(node.module.removeprefix("aioiroh."))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("aioiroh."):
                    found.add(a.name.removeprefix("aioiroh."))
    return {f for f in found if f}


def modules() -> list[tuple[str, Path]]:
    return sorted((module_name(p), p) for p in SRC.rglob("*.py"))


@pytest.mark.parametrize(("mod", "path"), modules(), ids=lambda v: str(v))
def test_module_respects_layers(mod: str, path: Path) -> None:
    if mod in FREE or mod == "__init__":
        return
    own = package_of(mod)
    layer = LAYERS[own]
    top = own.split(".")[0]
    bad = []
    for target in imports_of(path, mod):
        try:
            pkg = package_of(target)
        except KeyError:
            bad.append(f"{target} (not in LAYERS)")
            continue
        if pkg.split(".")[0] == top:
            continue  # inside the same top-level package
        if LAYERS[pkg] >= layer:
            bad.append(f"{target} (layer {LAYERS[pkg]})")
    assert not bad, f"{mod} (layer {layer}) imports upward or sideways: {bad}"
