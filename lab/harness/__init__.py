"""NAT lab harness: network namespaces, nftables NAT routers, link impairment.

Needs root plus ``ip``, ``nft`` and ``tc``. See docs/internals/natlab-recipe.md for the design.
"""

from .batch import gather_all, gather_limited, require_lab, run_lab
from .link import LinkUnsupported, netem_available
from .nat import NAT_KINDS, NatKind
from .netns import LabError, Namespace, PyProcess, missing_prerequisites, sweep_stale
from .topology import Device, Host, Internet, Lab, Node, Router

__all__ = [
    "NAT_KINDS",
    "Device",
    "Host",
    "Internet",
    "Lab",
    "LabError",
    "LinkUnsupported",
    "Namespace",
    "NatKind",
    "Node",
    "PyProcess",
    "Router",
    "gather_all",
    "gather_limited",
    "missing_prerequisites",
    "netem_available",
    "require_lab",
    "run_lab",
    "sweep_stale",
]
