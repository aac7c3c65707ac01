"""PacketProtection: RFC 9001 Appendix A vectors, the multipath nonce, PN decoding, key update."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aioiroh.errors import DecodeError
from aioiroh.quic._aioquic import CipherSuite, derive_key_iv_hp
from aioiroh.quic.packet_protection import PacketKeys, PacketProtection, PacketProtectionError

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc9001_appendix_a.json").read_text())
DCID = bytes.fromhex(VECTORS["dcid"])
AES = CipherSuite.AES_128_GCM_SHA256
SECRET_A = bytes(range(32))
SECRET_B = bytes(range(32, 64))


def _pair() -> tuple[PacketProtection, PacketProtection]:
    a = PacketProtection(AES, send_secret=SECRET_A, recv_secret=SECRET_B)
    b = PacketProtection(AES, send_secret=SECRET_B, recv_secret=SECRET_A)
    return a, b


def _short_header(pn: int, pn_len: int = 2, dcid: bytes = b"\x11" * 8) -> bytes:
    truncated = pn & ((1 << (8 * pn_len)) - 1)
    return bytes([0x40 | (pn_len - 1)]) + dcid + truncated.to_bytes(pn_len, "big")


def test_client_initial_vector() -> None:
    v = VECTORS["client_initial"]
    payload = bytes.fromhex(v["plain_payload_prefix"]) + bytes(v["plain_payload_zero_padding"])
    header = bytes.fromhex(v["plain_header"])
    client = PacketProtection.initial(DCID, is_client=True)
    assert client.seal(header, payload, 0, v["pn"]).hex() == v["protected"]
    server = PacketProtection.initial(DCID, is_client=False)
    got = server.open(bytes.fromhex(v["protected"]), v["pn_offset"], 0, 0)
    assert got == (header, payload, v["pn"])


def test_server_initial_vector() -> None:
    v = VECTORS["server_initial"]
    header, payload = bytes.fromhex(v["plain_header"]), bytes.fromhex(v["plain_payload"])
    server = PacketProtection.initial(DCID, is_client=False)
    assert server.seal(header, payload, 0, v["pn"]).hex() == v["protected"]
    client = PacketProtection.initial(DCID, is_client=True)
    assert client.open(bytes.fromhex(v["protected"]), v["pn_offset"], 0, 0) == (
        header,
        payload,
        v["pn"],
    )


def test_chacha20_short_header_vector() -> None:
    v = VECTORS["chacha20_short"]
    secret = bytes.fromhex(v["secret"])
    pp = PacketProtection(
        CipherSuite.CHACHA20_POLY1305_SHA256, send_secret=secret, recv_secret=secret
    )
    header, payload = bytes.fromhex(v["plain_header"]), bytes.fromhex(v["plain_payload"])
    assert pp.seal(header, payload, 0, v["pn"]).hex() == v["protected"]
    assert pp.open(bytes.fromhex(v["protected"]), v["pn_offset"], 0, v["pn"]) == (
        header,
        payload,
        v["pn"],
    )


@pytest.mark.parametrize(
    ("path_id", "pn"),
    [(0, 0), (0, 5), (1, 0), (2, 258), (7, 2**32 + 3), (2**32 - 1, 2**62 - 1)],
)
def test_path_nonce_known_answer(path_id: int, pn: int) -> None:
    """Path N's nonce is IV XOR (path_id u32 BE || pn u64 BE); checked with a plain AESGCM."""
    key, iv, _ = derive_key_iv_hp(cipher_suite=AES, secret=SECRET_A, version=1)
    header = _short_header(pn, 4)
    payload = b"multipath payload" * 3
    nonce = bytes(a ^ b for a, b in zip(iv, path_id.to_bytes(4, "big") + pn.to_bytes(8, "big")))
    expected = AESGCM(key).encrypt(nonce, payload, header)
    keys = PacketKeys(AES, SECRET_A)
    assert keys.encrypt(header, payload, path_id, pn) == expected
    sender, receiver = _pair()
    packet = sender.seal(header, payload, path_id, pn)
    assert packet[len(header) :] == expected  # header protection leaves the body alone
    assert receiver.open(packet, 9, path_id, pn) == (header, payload, pn)


def test_wrong_path_fails_authentication() -> None:
    sender, receiver = _pair()
    packet = sender.seal(_short_header(3), b"x" * 32, 1, 3)
    with pytest.raises(PacketProtectionError):
        receiver.open(packet, 9, 2, 3)


@pytest.mark.parametrize("path_id", [0, 2, 2**32 - 1])
def test_pn_crossing_window_boundary(path_id: int) -> None:
    """pn 258 sent with a 1-byte PN while 250 is expected: decodes to 258 on any path."""
    sender, receiver = _pair()
    packet = sender.seal(_short_header(258, pn_len=1), b"y" * 40, path_id, 258)
    header, payload, pn = receiver.open(packet, 9, path_id, 250)
    assert pn == 258 and payload == b"y" * 40 and header[-1] == 258 & 0xFF


def test_tampering_and_short_packets_raise_our_error() -> None:
    sender, receiver = _pair()
    packet = bytearray(sender.seal(_short_header(1), b"z" * 30, 0, 1))
    packet[-1] ^= 1
    with pytest.raises(DecodeError):
        receiver.open(bytes(packet), 9, 0, 1)
    with pytest.raises(PacketProtectionError):
        receiver.open(bytes(packet[:20]), 9, 0, 1)
    with pytest.raises(PacketProtectionError):
        sender.seal(_short_header(1, pn_len=1), b"", 0, 1)  # nothing to sample


def test_key_update_with_late_old_phase_packets() -> None:
    a, b = _pair()
    payload = b"p" * 32

    def send(src: PacketProtection, dst: PacketProtection, pn: int, path: int = 0) -> bytes:
        packet = src.seal(_short_header(pn), payload, path, pn)
        assert dst.open(packet, 9, path, pn)[2] == pn
        return packet

    send(a, b, 0)
    late_phase0 = a.seal(_short_header(1), payload, 0, 1)
    late_phase0_path3 = a.seal(_short_header(1), payload, 3, 1)
    a.update_key()
    assert a.key_phase == 1
    send(a, b, 2)  # b follows the peer-initiated update ...
    assert b.key_phase == 1  # ... and answers in the new phase
    send(b, a, 0)
    # Packets from the previous phase that arrive late still open.
    assert b.open(late_phase0, 9, 0, 3)[2] == 1
    assert b.open(late_phase0_path3, 9, 3, 2)[2] == 1
    send(a, b, 3)
    # A second update by b: phase 0 keys are derived afresh, not reused.
    b.update_key()
    assert b.key_phase == 0
    send(b, a, 1)
    assert a.key_phase == 0
    send(a, b, 4)
    # After discarding, a phase-1 straggler no longer opens.
    late_phase1 = PacketProtection(AES, send_secret=SECRET_A, recv_secret=SECRET_B)
    late_phase1.update_key()
    straggler = late_phase1.seal(_short_header(2), payload, 0, 2)
    b.discard_previous_keys()
    with pytest.raises(PacketProtectionError):
        b.open(straggler, 9, 0, 5)
    # A failed next-phase attempt does not rotate keys.
    assert b.key_phase == 0
    send(a, b, 5)
