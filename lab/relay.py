"""Our relay (with its QAD service) on the lab's internet segment, as every scenario starts it."""

from __future__ import annotations

from lab.harness import Lab, PyProcess

RELAY_PORT = 3340
QAD_PORT = 7842  # iroh's default, which RelayConfig assumes for a relay URL


async def start_relay(lab: Lab) -> tuple[PyProcess, str]:
    """Start ``aioiroh relay`` on a host "relay"; returns the process and its URL once it is up.

    Peers must not race the relay's startup (Rust backs off for long after a miss).
    """
    host = lab.host("relay")
    relay = await host.spawn_python(
        "aioiroh.cli.main",
        "relay",
        "--host",
        host.ip,
        "--port",
        str(RELAY_PORT),
        "--qad-port",
        str(QAD_PORT),
        "--json",
    )
    try:
        await relay.recv(timeout=30)
    except BaseException:
        await relay.stop()
        raise
    return relay, f"http://{host.ip}:{RELAY_PORT}"
