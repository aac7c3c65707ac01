"""QUIC packet protection with the multipath nonce and retained key phases (RFC 9001 §5, §6).

Sans-I/O, built directly on ``cryptography`` AEADs. QUIC v1 keys are derived here with one
HMAC per label (each label fits one hash output); other versions and suites use aioquic's public
``derive_key_iv_hp``/``hkdf_expand_label``.

Why not aioquic's ``CryptoPair.decrypt_packet``: it decodes the truncated packet number against
the value it was given as "expected", and for path N that would have to be the path-tagged
number ``(path_id << 64) | pn``, where its window arithmetic breaks (design notes §0 item 1,
§1.3). Here the packet number is decoded against the plain per-path expected number and the
path id only enters the nonce: path 0 is RFC 9001, path N XORs ``path_id (u32 BE) || pn (u64 BE)``
into the IV (wire doc §3.3). Header protection does not depend on the path.

:class:`PacketProtection` also keeps the previous read keys after a key update, because noq
updates keys after a random 10-1000 packets and multipath reorders packets across the change.
"""

from __future__ import annotations

import hmac
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from aioiroh.errors import DecodeError
from aioiroh.quic._aioquic import (
    INITIAL_CIPHER_SUITE,
    INITIAL_SALT_VERSION_1,
    CipherSuite,
    cipher_suite_hash,
    decode_packet_number,
    derive_key_iv_hp,
    hkdf_expand_label,
)

__all__ = [
    "AEAD_TAG_SIZE",
    "PacketKeys",
    "PacketProtection",
    "PacketProtectionError",
]

AEAD_TAG_SIZE: Final = 16
SAMPLE_SIZE: Final = 16
# The sample starts 4 bytes after the packet number offset (RFC 9001 §5.4.2).
SAMPLE_OFFSET: Final = 4
QUIC_VERSION_1: Final = 1
MAX_PATH_ID: Final = 2**32 - 1
_HP_MASK_LONG: Final = 0x0F
_HP_MASK_SHORT: Final = 0x1F
KEY_PHASE_BIT: Final = 0x04


def _label_info(label: bytes, length: int) -> bytes:
    """HKDF-Expand-Label's ``info`` for an empty context, with HKDF's block counter 1 appended.

    Every QUIC label asks for at most one hash output, so HKDF-Expand is a single HMAC over this
    (RFC 5869 §2.3, RFC 8446 §7.1); building it once per label saves re-encoding it per key.
    """
    full = b"tls13 " + label
    return length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00\x01"


# (hash name, digest size, AEAD key size) of each TLS 1.3 cipher suite.
_SUITE_PARAMS: Final[dict[int, tuple[str, int, int]]] = {
    CipherSuite.AES_128_GCM_SHA256: ("sha256", 32, 16),
    CipherSuite.AES_256_GCM_SHA384: ("sha384", 48, 32),
    CipherSuite.CHACHA20_POLY1305_SHA256: ("sha256", 32, 32),
}
# Precomputed infos: (key size, digest size) -> (key, iv, hp, ku) labels, QUIC v1.
_V1_INFOS: Final = {
    (key_size, digest): (
        _label_info(b"quic key", key_size),
        _label_info(b"quic iv", 12),
        _label_info(b"quic hp", key_size),
        _label_info(b"quic ku", digest),
    )
    for _, digest, key_size in _SUITE_PARAMS.values()
}
_CLIENT_IN_INFO: Final = _label_info(b"client in", 32)
_SERVER_IN_INFO: Final = _label_info(b"server in", 32)


class PacketProtectionError(DecodeError):
    """A packet could not be protected or unprotected (bad tag, too short, no keys)."""


class PacketKeys:
    """Keys for one direction and one key phase: AEAD key + IV and the header protection key."""

    __slots__ = (
        "_aead",
        "_ecb",
        "_ecb_encryptor",
        "_iv",
        "cipher_suite",
        "hp_key",
        "secret",
        "version",
    )

    def __init__(
        self,
        cipher_suite: CipherSuite,
        secret: bytes,
        *,
        version: int = QUIC_VERSION_1,
        hp_key: bytes | None = None,
    ) -> None:
        """Derive keys from a traffic ``secret``; ``hp_key`` overrides (key updates keep it)."""
        suite = _SUITE_PARAMS.get(cipher_suite)
        if version == QUIC_VERSION_1 and suite is not None:
            name, digest, key_size = suite
            key_info, iv_info, hp_info, _ = _V1_INFOS[key_size, digest]
            key = hmac.digest(secret, key_info, name)[:key_size]
            iv = hmac.digest(secret, iv_info, name)[:12]
            derived_hp = hmac.digest(secret, hp_info, name)[:key_size] if hp_key is None else hp_key
        else:
            key, iv, derived_hp = derive_key_iv_hp(
                cipher_suite=cipher_suite, secret=secret, version=version
            )
        self.cipher_suite = cipher_suite
        self.secret = secret
        self.version = version
        self.hp_key = derived_hp if hp_key is None else hp_key
        self._iv = int.from_bytes(iv, "big")
        self._aead: AESGCM | ChaCha20Poly1305
        if cipher_suite == CipherSuite.CHACHA20_POLY1305_SHA256:
            self._aead = ChaCha20Poly1305(key)
        else:
            self._aead = AESGCM(key)
        self._ecb: Cipher[modes.ECB] | None = None
        self._ecb_encryptor: Any = None
        if cipher_suite != CipherSuite.CHACHA20_POLY1305_SHA256:
            self._ecb = Cipher(algorithms.AES(self.hp_key), modes.ECB())

    def next_phase(self) -> PacketKeys:
        """Keys of the next key phase: secret via "quic ku", same header protection key."""
        suite = _SUITE_PARAMS.get(self.cipher_suite)
        if suite is not None:
            name, digest, key_size = suite
            secret = hmac.digest(self.secret, _V1_INFOS[key_size, digest][3], name)
            return PacketKeys(self.cipher_suite, secret, version=self.version, hp_key=self.hp_key)
        algorithm = cipher_suite_hash(self.cipher_suite)
        secret = hkdf_expand_label(algorithm, self.secret, b"quic ku", b"", algorithm.digest_size)
        return PacketKeys(self.cipher_suite, secret, version=self.version, hp_key=self.hp_key)

    def nonce(self, path_id: int, pn: int) -> bytes:
        """The AEAD nonce: IV XOR (path_id u32 BE || pn u64 BE)."""
        return (self._iv ^ ((path_id << 64) | pn)).to_bytes(12, "big")

    def encrypt(self, header: bytes, payload: bytes, path_id: int, pn: int) -> bytes:
        """AEAD-seal ``payload`` with ``header`` as associated data (ciphertext + tag)."""
        return self._aead.encrypt(self.nonce(path_id, pn), payload, header)

    def decrypt(self, header: bytes, ciphertext: bytes, path_id: int, pn: int) -> bytes:
        """AEAD-open; raises :class:`PacketProtectionError` on a bad tag."""
        try:
            return self._aead.decrypt(self.nonce(path_id, pn), ciphertext, header)
        except InvalidTag:
            raise PacketProtectionError("packet authentication failed") from None

    def header_mask(self, sample: bytes) -> bytes:
        """The 5-byte header protection mask for a 16-byte ``sample`` (RFC 9001 §5.4.3/5.4.4)."""
        if self._ecb is None:
            # The sample is counter (4 bytes LE) || nonce (12), which is cryptography's layout.
            chacha = Cipher(algorithms.ChaCha20(self.hp_key, sample), mode=None).encryptor()
            return chacha.update(bytes(5))
        enc = self._ecb_encryptor
        if enc is None:
            # ECB keeps no state between blocks: one encryptor serves every packet (building a
            # new one per packet was ~14 % of the engine's CPU).
            enc = self._ecb_encryptor = self._ecb.encryptor()
        return enc.update(sample)[:5]


def _initial_secrets(cid: bytes, is_client: bool) -> tuple[bytes, bytes]:
    # INITIAL_CIPHER_SUITE is AES-128-GCM with SHA-256: HKDF-Extract is one HMAC.
    initial = hmac.digest(INITIAL_SALT_VERSION_1, cid, "sha256")
    client = hmac.digest(initial, _CLIENT_IN_INFO, "sha256")
    server = hmac.digest(initial, _SERVER_IN_INFO, "sha256")
    return (client, server) if is_client else (server, client)


class PacketProtection:
    """Seal and open packets of one encryption level, with 1-RTT key update support.

    ``seal``/``open`` take the path id and the plain per-path packet number. For the 1-RTT level
    three read key sets are kept: previous phase (late packets), current, next (peer update).
    """

    __slots__ = ("_recv", "_recv_next", "_recv_phase", "_recv_prev", "_send", "_send_phase")

    def __init__(
        self,
        cipher_suite: CipherSuite,
        *,
        send_secret: bytes,
        recv_secret: bytes,
        version: int = QUIC_VERSION_1,
    ) -> None:
        """Set up from the TLS traffic secrets of this level."""
        self._send = PacketKeys(cipher_suite, send_secret, version=version)
        self._recv = PacketKeys(cipher_suite, recv_secret, version=version)
        self._recv_prev: PacketKeys | None = None
        self._recv_next: PacketKeys | None = None
        self._send_phase = 0
        self._recv_phase = 0

    @classmethod
    def initial(cls, cid: bytes, *, is_client: bool) -> PacketProtection:
        """Initial-level protection from the client's first destination CID (QUIC v1)."""
        send, recv = _initial_secrets(cid, is_client)
        return cls(INITIAL_CIPHER_SUITE, send_secret=send, recv_secret=recv)

    @property
    def key_phase(self) -> int:
        """Key phase bit we send with."""
        return self._send_phase

    def update_key(self) -> None:
        """Start a key update: send with the next phase's keys from now on (RFC 9001 §6.1).

        The caller must not call this again before the peer acknowledged a packet of the
        current phase (noq answers KEY_UPDATE_ERROR otherwise).
        """
        self._send = self._send.next_phase()
        self._send_phase ^= 1

    def discard_previous_keys(self) -> None:
        """Drop the previous phase's read keys (call about 3 PTO after an update)."""
        self._recv_prev = None

    def seal(self, header: bytes, payload: bytes, path_id: int, pn: int) -> bytes:
        """Encrypt and apply header protection.

        ``header`` is the plain header ending with the truncated packet number (its length is in
        the low two bits of the first byte); for short headers the key phase bit is set here.
        """
        first = header[0]
        is_long = bool(first & 0x80)
        if not is_long:
            first = (first & ~KEY_PHASE_BIT) | (KEY_PHASE_BIT * self._send_phase)
            header = bytes([first]) + header[1:]
        pn_len = (first & 0x03) + 1
        pn_offset = len(header) - pn_len
        keys = self._send
        protected = keys.encrypt(header, payload, path_id, pn)
        sample_start = SAMPLE_OFFSET - pn_len
        if sample_start + SAMPLE_SIZE > len(protected):
            raise PacketProtectionError("payload too short to sample for header protection")
        mask = keys.header_mask(protected[sample_start : sample_start + SAMPLE_SIZE])
        out = bytearray(header)
        out[0] ^= mask[0] & (_HP_MASK_LONG if is_long else _HP_MASK_SHORT)
        for i in range(pn_len):
            out[pn_offset + i] ^= mask[1 + i]
        out += protected
        return bytes(out)

    def seal_short(
        self, header: bytes, payload: bytes, pn_length: int, path_id: int, pn: int
    ) -> bytes:
        """Seal a short-header packet: the lean form of :meth:`seal` for the 1-RTT writer.

        ``header`` is the plain header (key phase bit already set) ending with the
        ``pn_length``-byte truncated packet number; ``payload`` is at least ``4 - pn_length``
        bytes. Returns the protected packet.
        """
        keys = self._send
        protected = keys._aead.encrypt(
            (keys._iv ^ ((path_id << 64) | pn)).to_bytes(12, "big"), payload, header
        )
        sample_start = SAMPLE_OFFSET - pn_length
        mask = keys.header_mask(protected[sample_start : sample_start + SAMPLE_SIZE])
        out = bytearray(header)
        out[0] ^= mask[0] & _HP_MASK_SHORT
        pn_offset = len(header) - pn_length
        for i in range(pn_length):
            out[pn_offset + i] ^= mask[1 + i]
        out += protected
        return bytes(out)

    def open(
        self, packet: bytes, pn_offset: int, path_id: int, expected_pn: int
    ) -> tuple[bytes, bytes, int]:
        """Remove header protection, decode the packet number, decrypt.

        ``packet`` is exactly one QUIC packet; ``pn_offset`` is where its packet number starts;
        ``expected_pn`` is the plain next-expected packet number of ``path_id``'s space.
        Returns ``(plain_header, payload, packet_number)``. A peer-initiated key update is
        followed automatically (and answered on the send side).
        """
        sample_start = pn_offset + SAMPLE_OFFSET
        if sample_start + SAMPLE_SIZE > len(packet):
            raise PacketProtectionError("packet too short to sample for header protection")
        mask = self._recv.header_mask(packet[sample_start : sample_start + SAMPLE_SIZE])
        first = packet[0]
        is_long = first & 0x80
        first ^= mask[0] & (_HP_MASK_LONG if is_long else _HP_MASK_SHORT)
        pn_len = (first & 0x03) + 1
        pn_end = pn_offset + pn_len
        truncated = int.from_bytes(packet[pn_offset:pn_end], "big") ^ int.from_bytes(
            mask[1 : 1 + pn_len], "big"
        )
        pn = decode_packet_number(truncated, 8 * pn_len, expected_pn)
        header = bytes((first,)) + packet[1:pn_offset] + truncated.to_bytes(pn_len, "big")
        ciphertext = packet[pn_end:]
        if is_long:
            return header, self._recv.decrypt(header, ciphertext, path_id, pn), pn

        phase = (first & KEY_PHASE_BIT) >> 2
        if phase == self._recv_phase:
            keys = self._recv
            try:
                return (
                    header,
                    keys._aead.decrypt(
                        (keys._iv ^ ((path_id << 64) | pn)).to_bytes(12, "big"), ciphertext, header
                    ),
                    pn,
                )
            except InvalidTag:
                raise PacketProtectionError("packet authentication failed") from None
        # Other phase: a late packet from the previous phase, or the peer's next phase.
        if self._recv_prev is not None:
            try:
                return header, self._recv_prev.decrypt(header, ciphertext, path_id, pn), pn
            except PacketProtectionError:
                pass
        if self._recv_next is None:
            self._recv_next = self._recv.next_phase()
        payload = self._recv_next.decrypt(header, ciphertext, path_id, pn)
        # Authenticated in the next phase: rotate, and follow on the send side if the peer
        # started this update (RFC 9001 §6.2).
        self._recv_prev = self._recv
        self._recv = self._recv_next
        self._recv_next = None
        self._recv_phase = phase
        if self._send_phase != phase:
            self.update_key()
        return header, payload, pn
