"""NAT-PMP, PCP and epoch codecs against byte vectors laid out from RFC 6886 / RFC 6887."""

from __future__ import annotations

import pytest

from aioiroh.errors import DecodeError, IrohError
from aioiroh.portmapper import PortMapDecodeError, PortMapRefused, nat_pmp, pcp
from aioiroh.portmapper.epoch import EpochTracker

H = bytes.fromhex


# -- NAT-PMP (RFC 6886 §3.2, §3.3) -------------------------------------------------------------


def test_nat_pmp_external_address_request_is_two_bytes() -> None:
    assert nat_pmp.encode_external_address_request() == H("0000")


def test_nat_pmp_external_address_response_decodes() -> None:
    resp = nat_pmp.decode_response(H("0080 0000 00000e10 cb007107"))
    assert resp == nat_pmp.ExternalAddressResponse(epoch=3600, external_ip="203.0.113.7")


def test_nat_pmp_map_request_layout() -> None:
    req = nat_pmp.encode_map_request(4500, 0, 7200)
    assert req == H("00 01 0000 1194 0000 00001c20")


def test_nat_pmp_delete_request_is_zero_lifetime_zero_port() -> None:
    assert nat_pmp.encode_map_request(4500, 0, 0) == H("00 01 0000 1194 0000 00000000")


def test_nat_pmp_map_response_decodes() -> None:
    resp = nat_pmp.decode_response(H("00 81 0000 00000e10 1194 3a98 00001c20"))
    assert resp == nat_pmp.MapResponse(nat_pmp.Opcode.MAP_UDP, 3600, 4500, 15000, 7200)


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 99])
def test_nat_pmp_error_result_is_refused_with_its_code(code: int) -> None:
    with pytest.raises(PortMapRefused) as info:
        nat_pmp.decode_response(H("00 81") + code.to_bytes(2, "big") + H("00000e10") + bytes(8))
    assert info.value.code == code
    assert isinstance(info.value, IrohError)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        H("0080"),
        H("0000 0000 00000e10 cb007107"),  # request, not response
        H("0180 0000 00000e10 cb007107"),  # version 1
        H("0085 0000 00000e10 cb007107"),  # unknown opcode
        H("0080 0000 00000e10 cb0071"),  # short address response
        H("0081 0000 00000e10 1194 3a98 0000"),  # short mapping response
        bytes(17),
    ],
)
def test_nat_pmp_malformed_responses_raise_decode_error(data: bytes) -> None:
    with pytest.raises(PortMapDecodeError):
        nat_pmp.decode_response(data)


# -- PCP (RFC 6887 §7.1, §7.2, §11.1, §14.1) ---------------------------------------------------

CLIENT = "192.168.1.10"
CLIENT16 = H("00000000000000000000ffff c0a8010a")
NONCE = H("0102030405060708090a0b0c")


def test_pcp_announce_request_layout() -> None:
    assert pcp.encode_announce_request(CLIENT) == H("02 00 0000 00000000") + CLIENT16


def test_pcp_map_request_layout() -> None:
    req = pcp.encode_map_request(NONCE, CLIENT, 4500, 3600)
    expected = (
        H("02 01 0000 00000e10")
        + CLIENT16
        + NONCE
        + H("11 000000 1194 0000")
        + H("00000000000000000000ffff 00000000")
    )
    assert req == expected
    assert len(req) == 60


def test_pcp_map_request_carries_suggested_external_address() -> None:
    req = pcp.encode_map_request(
        NONCE, CLIENT, 4500, 3600, external_port=15000, external_ip="203.0.113.7"
    )
    assert req[40:44] == H("1194 3a98")
    assert req[44:] == H("00000000000000000000ffff cb007107")


def test_pcp_map_request_ipv6_client() -> None:
    req = pcp.encode_map_request(NONCE, "2001:db8::1", 4500, 3600)
    assert req[8:24] == H("20010db8000000000000000000000001")
    assert req[44:60] == bytes(16)


def _map_response(result: int = 0, lifetime: int = 3600, epoch: int = 100) -> bytes:
    header = bytes([2, 0x81, 0, result]) + lifetime.to_bytes(4, "big") + epoch.to_bytes(4, "big")
    return (
        header
        + bytes(12)
        + NONCE
        + H("11 000000 1194 3a98")
        + H("00000000000000000000ffff cb007107")
    )


def test_pcp_map_response_decodes() -> None:
    resp = pcp.decode_response(_map_response())
    assert resp.opcode is pcp.Opcode.MAP
    assert (resp.lifetime, resp.epoch) == (3600, 100)
    assert resp.map == pcp.MapData(NONCE, 17, 4500, 15000, "203.0.113.7")


def test_pcp_announce_response_decodes_without_map_data() -> None:
    resp = pcp.decode_response(H("02 80 00 00 00000000 00000064") + bytes(12))
    assert resp.opcode is pcp.Opcode.ANNOUNCE and resp.map is None and resp.epoch == 100


def test_pcp_response_with_options_is_accepted_and_options_skipped() -> None:
    option = H("01 00 0010") + bytes(16)  # THIRD_PARTY, 16 bytes
    resp = pcp.decode_response(_map_response() + option)
    assert resp.map is not None and resp.map.external_port == 15000


@pytest.mark.parametrize("code", [1, 2, 3, 8, 11, 13, 200])
def test_pcp_error_result_is_refused_with_its_code(code: int) -> None:
    with pytest.raises(PortMapRefused) as info:
        pcp.decode_response(_map_response(result=code))
    assert info.value.code == code


def test_pcp_nat_pmp_only_server_answer_is_unsupported_version() -> None:
    with pytest.raises(PortMapRefused) as info:
        pcp.decode_response(H("00 81 0001 00000064 00000000"))
    assert info.value.code == pcp.ResultCode.UNSUPP_VERSION


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x02",
        H("02 81 00 00") + bytes(18),  # short header
        H("02 01 00 00") + bytes(20),  # request bit clear
        H("03 80 00 00") + bytes(20),  # version 3
        H("02 ff 00 00") + bytes(20),  # opcode 127
        H("02 81 00 00") + bytes(20),  # MAP without data
        _map_response() + b"\x00",  # not a multiple of 4
        bytes([2, 0x80]) + bytes(1200),  # over the 1100-byte limit
    ],
)
def test_pcp_malformed_responses_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        pcp.decode_response(data)


# -- epochs (RFC 6887 §8.5) --------------------------------------------------------------------


def test_epoch_advancing_with_our_clock_is_continuous() -> None:
    t = EpochTracker()
    assert not t.observe(1000, 0.0)
    assert not t.observe(1060, 60.0)
    assert not t.observe(1061, 62.0)


def test_epoch_going_backwards_means_gateway_restarted() -> None:
    t = EpochTracker()
    t.observe(1000, 0.0)
    assert t.observe(5, 30.0)


def test_epoch_lagging_our_clock_means_gateway_restarted() -> None:
    t = EpochTracker()
    t.observe(10, 0.0)
    assert t.observe(20, 3600.0)  # server counted 10 s while we counted an hour


def test_epoch_running_ahead_of_our_clock_means_lost_state() -> None:
    t = EpochTracker()
    t.observe(10, 0.0)
    assert t.observe(4000, 60.0)
