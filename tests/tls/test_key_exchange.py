"""Key exchange groups of iroh's TLS profile (aioquic contexts driven back to back)."""

from __future__ import annotations

from aioquic import tls
from aioquic.buffer import Buffer

from aioiroh.base.key import SecretKey
from aioiroh.tls.context import RpkContext, install_raw_public_keys

ALPN = "aioiroh/tls-test/0"
EPOCHS = (tls.Epoch.INITIAL, tls.Epoch.HANDSHAKE, tls.Epoch.ONE_RTT)


def _contexts() -> tuple[RpkContext, RpkContext]:
    ck, sk = SecretKey.generate(), SecretKey.generate()
    client = install_raw_public_keys(
        tls.Context(is_client=True, alpn_protocols=[ALPN], max_early_data=None),
        secret_key=ck,
        is_client=True,
        expected_peer=sk.public(),
    )
    server = install_raw_public_keys(
        tls.Context(is_client=False, alpn_protocols=[ALPN], max_early_data=None),
        secret_key=sk,
        is_client=False,
        expected_peer=None,
    )
    return client, server


def _buffers() -> dict[tls.Epoch, Buffer]:
    return {e: Buffer(capacity=16384) for e in EPOCHS}


def _drain(bufs: dict[tls.Epoch, Buffer]) -> list[bytes]:
    out = []
    for e in EPOCHS:
        out.append(bufs[e].data)
        bufs[e].seek(0)
    return out


def _run(client: RpkContext, server: RpkContext, hello: bytes | None = None) -> bytes:
    """Complete a handshake; returns the ClientHello the server saw."""
    cb, sb = _buffers(), _buffers()
    client.handle_message(b"", cb)
    sent = _drain(cb)
    first = hello if hello is not None else sent[0]
    server.handle_message(first, sb)
    for data in _drain(sb):
        if data:
            client.handle_message(data, cb)
    for data in _drain(cb):
        if data:
            server.handle_message(data, sb)
    assert client.state == tls.State.CLIENT_POST_HANDSHAKE
    assert server.state == tls.State.SERVER_POST_HANDSHAKE
    return first


def _client_hello(data: bytes) -> tls.ClientHello:
    return tls.pull_client_hello(Buffer(data=data))


def test_client_offers_one_x25519_key_share() -> None:
    client, server = _contexts()
    hello = _client_hello(_run(client, server))
    assert hello.supported_groups == [tls.Group.X25519]
    assert hello.key_share is not None
    assert [group for group, _ in hello.key_share] == [tls.Group.X25519]
    assert client._ec_private_keys == []
    assert client._x448_private_key is None
    assert server._x25519_private_key is not None  # the server answered with X25519


def test_server_skips_unknown_first_share_and_picks_x25519() -> None:
    # A Rust (rustls) client offers X25519MLKEM768 first and X25519 second; the server must
    # take the X25519 share, not fail. GREASE stands in for the group aioquic does not know.
    client, server = _contexts()
    client._supported_groups = [tls.Group.GREASE, tls.Group.X25519]
    hello = _client_hello(_run(client, server))
    assert hello.key_share is not None
    assert [group for group, _ in hello.key_share] == [tls.Group.GREASE, tls.Group.X25519]
    assert server._x25519_private_key is not None


def test_server_still_accepts_p256_only_clients() -> None:
    # Older aioiroh clients offered P-256 first; the server still takes it.
    client, server = _contexts()
    client._supported_groups = [tls.Group.SECP256R1]
    _run(client, server)
    assert len(server._ec_private_keys) == 1
