"""Per-packet cost of the native QUIC engine vs aioquic's ``QuicConnection``, in one process.

Both engines move one stream of ``--mb`` MB from client to server through an in-process pump
(no sockets, virtual clock advanced 0.5 ms per round), so the numbers are protocol CPU only.
The pump drains each side in batches and calls ``datagrams_to_send`` once per batch, like a
batching driver would.

    .venv/bin/python bench/engine.py [--mb 20] [--kind both|native|aioquic] [--rounds 2]
"""

# ruff: noqa: E402  (imports follow the sys.path fix below)
from __future__ import annotations

import argparse
import ssl
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src")]

from aioquic.buffer import Buffer
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import pull_quic_header
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from aioiroh.base.key import SecretKey
from aioiroh.quic.aioquic_connection import QuicSettings
from aioiroh.quic.connection import IrohConnection
from aioiroh.tls.x509 import self_signed_certificate

A = ("127.0.0.1", 1)
B = ("127.0.0.1", 2)
STEP = 0.0005
WINDOW = 64 * 1024 * 1024


def _self_signed() -> tuple[Any, Any]:
    cert, key = self_signed_certificate(["bench"])
    return x509.load_pem_x509_certificate(cert), load_pem_private_key(key, None)


def _aioquic_pair() -> tuple[Any, Any]:
    cert, key = _self_signed()
    common = dict(
        alpn_protocols=["bench"],
        max_data=WINDOW,
        max_stream_data=WINDOW,
        congestion_control_algorithm="cubic",
        max_datagram_size=1452,
    )
    client = QuicConnection(
        configuration=QuicConfiguration(is_client=True, verify_mode=ssl.CERT_NONE, **common)  # type: ignore[arg-type]
    )
    scfg = QuicConfiguration(is_client=False, **common)  # type: ignore[arg-type]
    scfg.certificate, scfg.private_key = cert, key
    return client, scfg


def _native_pair() -> tuple[Any, Any]:
    settings = QuicSettings(max_data=WINDOW, max_stream_data=WINDOW)
    ckey, skey = SecretKey.generate(), SecretKey.generate()
    client = IrohConnection(
        secret_key=ckey,
        is_client=True,
        alpns=[b"bench"],
        expected_peer=skey.public(),
        settings=settings,
    )
    return client, (skey, settings)


def run(kind: str, size: int) -> tuple[float, int]:
    now = 0.0
    if kind == "aioquic":
        client, scfg = _aioquic_pair()
    else:
        client, (skey, settings) = _native_pair()
    client.connect(B, now)
    server: Any = None
    to_server: list[bytes] = []
    to_client: list[bytes] = []
    received = 0
    started = False
    t0 = 0.0
    datagrams = 0
    while True:
        to_server.extend(d for d, _ in client.datagrams_to_send(now))
        if to_server and server is None:
            header = pull_quic_header(Buffer(data=to_server[0]), host_cid_length=8)
            if kind == "aioquic":
                server = QuicConnection(
                    configuration=scfg, original_destination_connection_id=header.destination_cid
                )
            else:
                server = IrohConnection(
                    secret_key=skey,
                    is_client=False,
                    alpns=[b"bench"],
                    original_destination_connection_id=header.destination_cid,
                    settings=settings,
                )
        now += STEP
        for d in to_server:
            server.receive_datagram(d, A, now)
        datagrams += len(to_server)
        to_server.clear()
        while (ev := server.next_event()) is not None:
            if isinstance(ev, events.StreamDataReceived):
                received += len(ev.data)
                # The application reads at once: credit follows reads (RFC 9000 §4).
                server.stream_consumed(ev.stream_id, len(ev.data), now)
        if received >= size:
            break
        to_client.extend(d for d, _ in server.datagrams_to_send(now))
        now += STEP
        for d in to_client:
            client.receive_datagram(d, B, now)
        to_client.clear()
        while (ev := client.next_event()) is not None:
            if isinstance(ev, events.HandshakeCompleted) and not started:
                started = True
                t0 = time.perf_counter()
                client.send_stream_data(0, bytes(size), end_stream=True)
        for conn in (client, server):
            at = conn.get_timer()
            if at is not None and at <= now:
                conn.handle_timer(now)
    return time.perf_counter() - t0, datagrams


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument(
        "--kind", choices=["both", "native", "aioquic"], default="both", help="engines to run"
    )
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    size = int(args.mb * 1_000_000)
    kinds = ("aioquic", "native") if args.kind == "both" else (args.kind,)
    for kind in kinds * args.rounds:
        elapsed, datagrams = run(kind, size)
        print(
            f"{kind:8} {size / elapsed / 1e6:7.1f} MB/s  "
            f"{elapsed / datagrams * 1e6:6.1f} us per data datagram (both sides)  "
            f"{datagrams} datagrams"
        )


if __name__ == "__main__":
    main()
