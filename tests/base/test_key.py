import pytest

from aioiroh import EndpointId, KeyParseError, SecretKey, SignatureError

ZERO_PUB = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"


def test_zero_key_vectors():
    pub = SecretKey(bytes(32)).public()
    assert str(pub) == ZERO_PUB
    assert pub.tls_server_name() == (
        "7dl2ff6emqi2qol3l382krodedij45bn3nh479hqo14a32qpr8kg.iroh.invalid"
    )
    assert pub.to_z32() == "8pinxxgqs41n4aididenw5apqp1urfmzdztr8jt4abrkdn435ewo"
    assert pub.fmt_short() == ZERO_PUB[:10]


def test_parse_hex_and_base32():
    pub = SecretKey.generate().public()
    assert EndpointId.parse(str(pub)) == pub
    assert EndpointId.parse(pub.to_base32()) == pub
    assert EndpointId.parse(pub.to_base32().upper()) == pub
    assert EndpointId.from_z32(pub.to_z32()) == pub


@pytest.mark.parametrize("text", ["", "zz", "00" * 31, "g" * 64, "!" * 52])
def test_parse_rejects_garbage(text):
    with pytest.raises(KeyParseError):
        EndpointId.parse(text)


def test_sign_verify_strict():
    sk = SecretKey.generate()
    sig = sk.sign(b"hello")
    sk.public().verify(b"hello", sig)
    with pytest.raises(SignatureError):
        sk.public().verify(b"hellO", sig)
    bad = bytearray(sig.to_bytes())
    bad[63] |= 0xF0  # scalar >= L
    with pytest.raises(SignatureError):
        sk.public().verify(b"hello", bytes(bad))


def test_small_order_key_rejected_on_verify():
    # y = 1 is the identity point: a valid encoding but a weak key.
    ident = (1).to_bytes(32, "little")
    key = EndpointId(ident)
    with pytest.raises(SignatureError):
        key.verify(b"x", bytes(64))
