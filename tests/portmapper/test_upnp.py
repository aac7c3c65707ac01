"""UPnP IGD codecs: SSDP, device descriptions, SOAP; hostile inputs are refused and bounded."""

from __future__ import annotations

import time

import pytest

from aioiroh.portmapper import PortMapDecodeError, PortMapRefused, upnp

from .fake_gateway import FakeGateway, _fault

GW = "127.0.0.1"
LOCATION = "http://127.0.0.1:5000/rootDesc.xml"


def test_msearch_asks_for_an_internet_gateway_device() -> None:
    msg = upnp.encode_msearch().decode()
    assert msg.startswith("M-SEARCH * HTTP/1.1\r\n")
    assert 'MAN: "ssdp:discover"' in msg
    assert "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1" in msg
    assert msg.endswith("\r\n\r\n")


def test_ssdp_answer_parses_location() -> None:
    gw = FakeGateway("upnp", http_port=5000)
    resp = upnp.parse_ssdp_response(gw.ssdp_answer())
    assert resp.location == LOCATION
    assert resp.st.endswith("InternetGatewayDevice:1")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"NOTIFY * HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nLOCATION: http://x/\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nST: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nLOCATION: \xff\xfe\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 5000 + b"\r\n\r\n",
    ],
)
def test_malformed_ssdp_answers_are_refused(data: bytes) -> None:
    with pytest.raises(PortMapDecodeError):
        upnp.parse_ssdp_response(data)


def test_description_yields_the_absolute_control_url_on_the_gateway() -> None:
    services = upnp.parse_description(FakeGateway("upnp").description(), LOCATION, GW)
    assert services[0] == upnp.IgdService(
        "urn:schemas-upnp-org:service:WANIPConnection:1", "http://127.0.0.1:5000/ctl/IPConn"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://192.0.2.99/ctl",
        "https://127.0.0.1/ctl",
        "file:///etc/passwd",
        "http://localhost/ctl",
        "http://127.0.0.1:99999/ctl",
        "http://[::1/ctl",
    ],
)
def test_urls_off_the_gateway_are_refused(url: str) -> None:
    with pytest.raises(PortMapDecodeError):
        upnp.check_url_on_gateway(url, GW)


def test_control_url_on_another_host_is_refused() -> None:
    body = FakeGateway("upnp", hostile={"foreign_control"}).description()
    with pytest.raises(PortMapDecodeError, match="not on the gateway"):
        upnp.parse_description(body, LOCATION, GW)


def test_xml_bomb_is_refused_without_expanding() -> None:
    body = FakeGateway("upnp", hostile={"xml_bomb"}).description()
    start = time.monotonic()
    with pytest.raises(PortMapDecodeError, match="unsafe XML"):
        upnp.parse_description(body, LOCATION, GW)
    assert time.monotonic() - start < 0.5


def test_external_entity_is_refused() -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    with pytest.raises(PortMapDecodeError, match="unsafe XML"):
        upnp.parse_description(body, LOCATION, GW)


def test_oversized_description_is_refused_before_parsing() -> None:
    body = FakeGateway("upnp", hostile={"huge_description"}).description()
    with pytest.raises(PortMapDecodeError, match="byte XML"):
        upnp.parse_description(body, LOCATION, GW)


def test_deeply_nested_xml_is_refused() -> None:
    body = b"<a>" * 200 + b"</a>" * 200
    with pytest.raises(PortMapDecodeError, match="nested"):
        upnp.parse_description(body, LOCATION, GW)


@pytest.mark.parametrize("body", [b"<root><device>", b"not xml", b"\xff\xfe<", b""])
def test_malformed_xml_is_refused(body: bytes) -> None:
    with pytest.raises(PortMapDecodeError):
        upnp.parse_description(body, LOCATION, GW)


def test_description_without_a_wan_connection_is_refused() -> None:
    body = b'<root xmlns="urn:schemas-upnp-org:device-1-0"><device></device></root>'
    with pytest.raises(PortMapDecodeError, match="no WANIPConnection"):
        upnp.parse_description(body, LOCATION, GW)


def test_soap_request_escapes_arguments() -> None:
    body, action = upnp.soap_request(
        "urn:schemas-upnp-org:service:WANIPConnection:1",
        "AddPortMapping",
        {"NewPortMappingDescription": "<&>"},
    )
    assert action == '"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping"'
    assert b"<NewPortMappingDescription>&lt;&amp;&gt;</NewPortMappingDescription>" in body


def test_soap_response_out_arguments() -> None:
    _status, body = FakeGateway("upnp").soap("GetExternalIPAddress", b"")
    out = upnp.parse_soap_response(body, "GetExternalIPAddress")
    assert out == {"NewExternalIPAddress": "203.0.113.7"}


def test_soap_fault_is_refused_with_the_upnp_error_code() -> None:
    with pytest.raises(PortMapRefused) as info:
        upnp.parse_soap_response(_fault(718, "ConflictInMappingEntry"), "AddPortMapping")
    assert info.value.code == 718


def test_soap_answer_for_another_action_is_refused() -> None:
    _status, body = FakeGateway("upnp").soap("GetExternalIPAddress", b"")
    with pytest.raises(PortMapDecodeError):
        upnp.parse_soap_response(body, "AddPortMapping")
