"""Transport parameters: iroh's captured blob, extension ids, the QNT raw-byte quirk, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioiroh.errors import IrohError
from aioiroh.quic._aioquic import QuicTransportParameters, encode_uint_var
from aioiroh.quic.frames import QuicProtocolViolation
from aioiroh.quic.transport_parameters import (
    NAT_TRAVERSAL_ID,
    TRANSPORT_PARAMETER_ERROR,
    IrohTransportParameters,
    grease_id,
    iroh_default_parameters,
)

VECTOR = Path(__file__).parent / "vectors" / "iroh_1_4_1_client_transport_parameters.hex"


def _param(param_id: int, value: bytes) -> bytes:
    return encode_uint_var(param_id) + encode_uint_var(len(value)) + value


def test_decode_captured_iroh_client_parameters() -> None:
    """ClientHello ext 0x39 sent by iroh 1.4.1 (PyPI iroh 1.2.0), captured on loopback."""
    params = IrohTransportParameters.decode(bytes.fromhex(VECTOR.read_text().strip()))
    q = params.quic
    assert q.max_idle_timeout == 30_000
    assert q.max_udp_payload_size == 1472
    assert q.initial_max_data == 2**62 - 1
    assert q.initial_max_stream_data_bidi_local == 1_250_000
    assert q.initial_max_stream_data_bidi_remote == 1_250_000
    assert q.initial_max_stream_data_uni == 1_250_000
    assert (q.initial_max_streams_bidi, q.initial_max_streams_uni) == (100, 100)
    assert q.active_connection_id_limit == 5
    assert q.initial_source_connection_id is not None
    assert len(q.initial_source_connection_id) == 8
    assert q.max_datagram_frame_size == 65535
    assert q.original_destination_connection_id is None and q.stateless_reset_token is None
    assert params.initial_max_path_id == 7
    assert params.nat_traversal == 32
    assert params.min_ack_delay == 1000
    assert params.address_discovery_role is None


def test_defaults_match_iroh_and_round_trip() -> None:
    captured = IrohTransportParameters.decode(bytes.fromhex(VECTOR.read_text().strip()))
    ours = iroh_default_parameters(
        True, initial_source_connection_id=captured.quic.initial_source_connection_id or b""
    )
    decoded = IrohTransportParameters.decode(ours.encode(grease=(3, b"\x01\x02")))
    assert decoded == captured == ours


def test_server_defaults_carry_server_only_ids() -> None:
    params = iroh_default_parameters(
        False,
        initial_source_connection_id=b"s" * 8,
        original_destination_connection_id=b"o" * 8,
        stateless_reset_token=b"t" * 16,
        address_discovery_role=2,
    )
    decoded = IrohTransportParameters.decode(params.encode())
    assert decoded.quic.original_destination_connection_id == b"o" * 8
    assert decoded.quic.stateless_reset_token == b"t" * 16
    assert decoded.address_discovery_role == 2


@pytest.mark.parametrize("value", [1, 32, 63, 64, 200, 255])
def test_nat_traversal_is_one_raw_byte(value: int) -> None:
    encoded = IrohTransportParameters(nat_traversal=value).encode()
    assert _param(NAT_TRAVERSAL_ID, bytes([value])) in encoded
    assert IrohTransportParameters.decode(encoded).nat_traversal == value


@pytest.mark.parametrize(
    "blob",
    [
        _param(NAT_TRAVERSAL_ID, b""),
        _param(NAT_TRAVERSAL_ID, b"\x00"),
        _param(NAT_TRAVERSAL_ID, b"\x40\x40"),  # a varint 64 is not the wire format
        _param(0x3E, encode_uint_var(2**32)),
        _param(0x3E, b"\x07\x00"),
        _param(0x9F81A176, b"\x03"),
        _param(0x01, b"\x01") * 2,  # duplicate
        _param(0x03, encode_uint_var(1199)),
        _param(0x0E, b"\x01"),
        _param(0x01, b"\x40"),  # truncated varint inside a known parameter
        b"\x05\x10\x00",  # length beyond the end
    ],
)
def test_malformed_parameters_raise_transport_parameter_error(blob: bytes) -> None:
    with pytest.raises(QuicProtocolViolation) as info:
        IrohTransportParameters.decode(blob)
    assert info.value.code == TRANSPORT_PARAMETER_ERROR


def test_grease_and_unknown_ids_are_skipped() -> None:
    blob = _param(grease_id(1000), b"\xaa" * 15) + _param(0x1234, b"zz") + _param(0x01, b"\x0a")
    assert IrohTransportParameters.decode(blob).quic == QuicTransportParameters(max_idle_timeout=10)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_decode_or_raise_our_error(data: bytes) -> None:
    try:
        IrohTransportParameters.decode(data)
    except IrohError:
        pass
