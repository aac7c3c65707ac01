"""Self-signed X.509 certificates, for services that need ordinary TLS (QAD, test relays)."""

from __future__ import annotations

import datetime
from pathlib import Path

__all__ = ["self_signed_certificate", "write_self_signed"]


def self_signed_certificate(hostnames: list[str]) -> tuple[bytes, bytes]:
    """A fresh self-signed ECDSA P-256 certificate (PEM cert, PEM key) for ``hostnames``.

    The relay's QAD service uses one when the relay serves plain HTTP (QAD still needs TLS,
    and iroh clients use the answer only as a hint); tests and benchmarks use it for TLS.
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0] or "relay")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def write_self_signed(directory: str | Path, hostnames: list[str]) -> tuple[Path, Path]:
    """Write a fresh self-signed certificate and key as ``cert.pem``/``key.pem`` in
    ``directory``; returns their paths."""
    cert, key = self_signed_certificate(hostnames)
    base = Path(directory)
    cert_path, key_path = base / "cert.pem", base / "key.pem"
    cert_path.write_bytes(cert)
    key_path.write_bytes(key)
    return cert_path, key_path
