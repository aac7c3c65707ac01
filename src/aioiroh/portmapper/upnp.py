"""UPnP IGD (v1/v2) pieces, sans-I/O: SSDP search, device description, SOAP calls.

Everything a "router" on the LAN sends is bounded and checked: SSDP answers and HTTP bodies
have size caps, XML is parsed by ``defusedxml`` (no DTDs, no entity expansion, no external
references), and every URL must point at the gateway itself, so a hostile responder cannot
steer us to another host.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml
import defusedxml.ElementTree as SafeET

from .errors import PortMapDecodeError, PortMapRefused

__all__ = [
    "MAX_DESCRIPTION_SIZE",
    "MAX_SOAP_SIZE",
    "MAX_SSDP_SIZE",
    "SSDP_PORT",
    "IgdService",
    "SsdpResponse",
    "check_url_on_gateway",
    "encode_msearch",
    "parse_description",
    "parse_soap_response",
    "parse_ssdp_response",
    "soap_request",
]

SSDP_PORT = 1900
SSDP_MULTICAST = "239.255.255.250"
SEARCH_TARGET = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
MAX_SSDP_SIZE = 2048
MAX_DESCRIPTION_SIZE = 64 * 1024
MAX_SOAP_SIZE = 16 * 1024
#: Most nested XML we accept; IGD descriptions are about 6 deep.
MAX_XML_DEPTH = 16
#: Connection services that can map ports, best first (IGD v2 before v1).
WAN_SERVICES = (
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
)
IPV6_FIREWALL_SERVICE = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"
_DEVICE_NS = "{urn:schemas-upnp-org:device-1-0}"
_SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


@dataclass(frozen=True, slots=True)
class SsdpResponse:
    location: str
    st: str
    usn: str


@dataclass(frozen=True, slots=True)
class IgdService:
    """A port-mapping service of the gateway: its type and absolute control URL."""

    service_type: str
    control_url: str


def encode_msearch(host: str = SSDP_MULTICAST, *, mx: int = 1) -> bytes:
    """An SSDP M-SEARCH for an Internet Gateway Device (sent unicast to the gateway)."""
    return (
        "M-SEARCH * HTTP/1.1\r\n"
        f"HOST: {host}:{SSDP_PORT}\r\n"
        'MAN: "ssdp:discover"\r\n'
        f"MX: {mx}\r\n"
        f"ST: {SEARCH_TARGET}\r\n\r\n"
    ).encode()


def parse_ssdp_response(data: bytes) -> SsdpResponse:
    """Parse an SSDP search answer (an HTTP/1.1 200 header block over UDP)."""
    if len(data) > MAX_SSDP_SIZE:
        raise PortMapDecodeError(f"SSDP: {len(data)}-byte answer")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise PortMapDecodeError("SSDP: answer is not ASCII") from None
    lines = text.split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1.") or status[1] != "200":
        raise PortMapDecodeError(f"SSDP: status line {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    location = headers.get("location")
    if not location:
        raise PortMapDecodeError("SSDP: answer without LOCATION")
    return SsdpResponse(location, headers.get("st", ""), headers.get("usn", ""))


def check_url_on_gateway(url: str, gateway: str) -> str:
    """``url`` if it is plain HTTP to the gateway's own address; a decode error otherwise."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        raise PortMapDecodeError(f"UPnP: bad URL {url[:80]!r}") from None
    if parts.scheme != "http" or host is None:
        raise PortMapDecodeError(f"UPnP: not an http URL: {url[:80]!r}")
    try:
        same = ipaddress.ip_address(host) == ipaddress.ip_address(gateway)
    except ValueError:
        same = False
    if not same:
        raise PortMapDecodeError(f"UPnP: URL {url[:80]!r} is not on the gateway {gateway}")
    return url


def _parse_xml(body: bytes, limit: int) -> Element:
    if len(body) > limit:
        raise PortMapDecodeError(f"UPnP: {len(body)}-byte XML document")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise PortMapDecodeError(f"UPnP: unsafe XML refused ({type(exc).__name__})") from None
    except SafeET.ParseError as exc:
        raise PortMapDecodeError(f"UPnP: malformed XML ({exc})") from None
    _check_depth(root)
    return root


def _check_depth(root: Element) -> None:
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_XML_DEPTH:
            raise PortMapDecodeError("UPnP: XML nested too deeply")
        stack.extend((child, depth + 1) for child in node)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_description(body: bytes, location: str, gateway: str) -> list[IgdService]:
    """The port-mapping services of a device description, best first.

    Control URLs are resolved against ``URLBase`` (or the description's own URL) and must be
    on the gateway.
    """
    root = _parse_xml(body, MAX_DESCRIPTION_SIZE)
    base = location
    for node in root.iter():
        if _local(node.tag) == "URLBase" and node.text:
            base = node.text.strip()
            break
    found: dict[str, IgdService] = {}
    for node in root.iter():
        if _local(node.tag) != "service":
            continue
        fields = {_local(child.tag): (child.text or "").strip() for child in node}
        stype, control = fields.get("serviceType", ""), fields.get("controlURL", "")
        if stype in (*WAN_SERVICES, IPV6_FIREWALL_SERVICE) and control and stype not in found:
            url = check_url_on_gateway(urljoin(base, control), gateway)
            found[stype] = IgdService(stype, url)
    ranked = [found[s] for s in (*WAN_SERVICES, IPV6_FIREWALL_SERVICE) if s in found]
    if not any(s.service_type in WAN_SERVICES for s in ranked):
        raise PortMapDecodeError("UPnP: device has no WANIPConnection service")
    return ranked


def soap_request(service_type: str, action: str, args: dict[str, str]) -> tuple[bytes, str]:
    """The SOAP body and SOAPAction header value for ``action`` of ``service_type``."""
    params = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in args.items())
    body = (
        '<?xml version="1.0"?>\r\n'
        f'<s:Envelope xmlns:s="{_SOAP_ENV}" '
        's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">'
        f'<s:Body><u:{action} xmlns:u="{service_type}">{params}</u:{action}></s:Body>'
        "</s:Envelope>\r\n"
    )
    return body.encode(), f'"{service_type}#{action}"'


def add_port_mapping_args(
    external_port: int, internal_port: int, internal_client: str, lease: int, description: str
) -> dict[str, str]:
    return {
        "NewRemoteHost": "",
        "NewExternalPort": str(external_port),
        "NewProtocol": "UDP",
        "NewInternalPort": str(internal_port),
        "NewInternalClient": internal_client,
        "NewEnabled": "1",
        "NewPortMappingDescription": description,
        "NewLeaseDuration": str(lease),
    }


def delete_port_mapping_args(external_port: int) -> dict[str, str]:
    return {"NewRemoteHost": "", "NewExternalPort": str(external_port), "NewProtocol": "UDP"}


def add_pinhole_args(internal_client: str, internal_port: int, lease: int) -> dict[str, str]:
    """WANIPv6FirewallControl AddPinhole: let any remote reach our IPv6 UDP port."""
    return {
        "RemoteHost": "",
        "RemotePort": "0",
        "InternalClient": internal_client,
        "InternalPort": str(internal_port),
        "Protocol": "17",
        "LeaseTime": str(lease),
    }


def parse_soap_response(body: bytes, action: str) -> dict[str, str]:
    """The out-arguments of a SOAP ``<action>Response``; a UPnP fault raises refused."""
    root = _parse_xml(body, MAX_SOAP_SIZE)
    for node in root.iter():
        name = _local(node.tag)
        if name == f"{action}Response":
            return {_local(child.tag): (child.text or "").strip() for child in node}
        if name == "Fault":
            code, desc = -1, ""
            for sub in node.iter():
                if _local(sub.tag) == "errorCode" and sub.text:
                    try:
                        code = int(sub.text.strip()[:6])
                    except ValueError:
                        code = -1
                elif _local(sub.tag) == "errorDescription":
                    desc = (sub.text or "").strip()[:80]
            raise PortMapRefused(f"UPnP {action}: error {code} {desc}".rstrip(), code)
    raise PortMapDecodeError(f"UPnP {action}: no {action}Response in the answer")
