"""The URL of a relay server, normalised the way Rust iroh normalises it.

Rust's ``RelayUrl`` is a thin wrapper around a WHATWG URL (the ``url`` crate) with no
normalisation of its own (wire doc §7.3). Two relays are the same relay exactly when the
serialised URLs are equal, so we must serialise the same bytes Rust does: the string travels
in tickets, pkarr records and relay-map keys.

This module implements the WHATWG basic URL parser for the *special* schemes iroh uses
(``http``, ``https``, ``ws``, ``wss``), which covers what relay URLs look like in practice:
scheme and host lowercased, IDNA for non-ASCII hosts, IPv4 shorthand (``0x7f.1``) and
IPv6 canonicalised, default port dropped, empty path serialised as ``/``, dot segments
resolved, percent-encoding of unsafe characters, and a trailing dot in the host **kept**.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Final

import idna

from ..errors import DecodeError

__all__ = ["RelayUrl", "RelayUrlParseError"]

# Special schemes we accept and their default ports (WHATWG "special scheme" table).
DEFAULT_PORTS: Final[dict[str, int]] = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# A relay URL is a short string; refuse absurd input before doing any work on it.
MAX_URL_LENGTH: Final = 2048
# The path iroh-relay serves its WebSocket upgrade on (wire doc §5.1).
RELAY_PATH: Final = "/relay"

_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_C0_OR_SPACE: Final = "".join(chr(c) for c in range(0x21))
# Characters a domain may never contain, after percent-decoding (WHATWG "forbidden domain
# code point").
_FORBIDDEN_DOMAIN: Final = frozenset(
    "\x00\t\n\r #/:<>?@[\\]^|%\x7f" + "".join(chr(c) for c in range(0x20))
)
# Percent-encode sets (WHATWG §1.3), beyond C0 controls and non-ASCII which always encode.
_FRAGMENT_SET: Final = frozenset(' "<>`')
_QUERY_SET: Final = frozenset(" \"#<>'")  # the special-query set
_PATH_SET: Final = frozenset(' "#<>?`{}')
_USERINFO_SET: Final = _PATH_SET | frozenset("/:;=@[\\]^|")
_SINGLE_DOT: Final = frozenset({".", "%2e"})
_DOUBLE_DOT: Final = frozenset({"..", ".%2e", "%2e.", "%2e%2e"})


class RelayUrlParseError(DecodeError):
    """The text is not a valid relay URL."""


def _pct_encode(text: str, encode_set: frozenset[str]) -> str:
    out: list[str] = []
    for ch in text:
        if ch in encode_set or ord(ch) < 0x20 or ord(ch) > 0x7E:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        else:
            out.append(ch)
    return "".join(out)


def _pct_decode(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    out = bytearray()
    i = 0
    while i < len(raw):
        b = raw[i]
        if b == 0x25 and i + 2 < len(raw) and _is_hex2(raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(b)
            i += 1
    return bytes(out)


def _is_hex2(two: bytes) -> bool:
    return len(two) == 2 and all(c in b"0123456789abcdefABCDEF" for c in two)


def _parse_ipv4_number(part: str) -> int | None:
    """One dotted part in decimal, octal (leading 0) or hex (0x); None if not a number."""
    if not part:
        return None
    base = 10
    if len(part) >= 2 and part[:2] in ("0x", "0X"):
        part, base = part[2:], 16
    elif len(part) >= 2 and part[0] == "0":
        part, base = part[1:], 8
    if not part:
        return 0
    digits = {10: "0123456789", 8: "01234567", 16: "0123456789abcdefABCDEF"}[base]
    if any(c not in digits for c in part):
        return None
    return int(part, base)


def _ends_in_number(host: str) -> bool:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts = parts[:-1]
    last = parts[-1]
    if last and all(c in "0123456789" for c in last):
        return True
    return _parse_ipv4_number(last) is not None and last[:2] in ("0x", "0X")


def _parse_ipv4(host: str) -> str:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts = parts[:-1]
    if len(parts) > 4:
        raise RelayUrlParseError(f"invalid IPv4 host {host!r}")
    numbers: list[int] = []
    for part in parts:
        n = _parse_ipv4_number(part)
        if n is None:
            raise RelayUrlParseError(f"invalid IPv4 host {host!r}")
        numbers.append(n)
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise RelayUrlParseError(f"IPv4 host out of range: {host!r}")
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n * 256 ** (3 - i)
    return str(ipaddress.IPv4Address(value))


def _serialize_ipv6(addr: ipaddress.IPv6Address) -> str:
    """WHATWG IPv6 serialisation: hex pieces, longest zero run (>= 2) compressed, no IPv4 tail."""
    pieces = [int.from_bytes(addr.packed[i : i + 2], "big") for i in range(0, 16, 2)]
    best_start, best_len, i = -1, 1, 0
    while i < 8:
        if pieces[i] == 0:
            j = i
            while j < 8 and pieces[j] == 0:
                j += 1
            if j - i > best_len:
                best_start, best_len = i, j - i
            i = j
        else:
            i += 1
    if best_start < 0:
        return ":".join(f"{p:x}" for p in pieces)
    head = ":".join(f"{p:x}" for p in pieces[:best_start])
    tail = ":".join(f"{p:x}" for p in pieces[best_start + best_len :])
    return f"{head}::{tail}"


def _check_u_label(label: str) -> None:
    if unicodedata.category(label[0]).startswith("M"):
        raise idna.IDNAError("label starts with a combining mark")
    # UTS 46 CheckJoiners: ZWJ/ZWNJ only where RFC 5892's CONTEXTJ rules allow.
    for pos, ch in enumerate(label):
        if ch in "\u200c\u200d" and not idna.valid_contextj(label, pos):
            raise idna.IDNAError("joiner not allowed here")


def _domain_to_ascii(domain: str, text: str) -> str:
    """UTS 46 ToASCII as WHATWG URLs use it: non-transitional, no STD3 or hyphen checks.

    The ``idna`` package's ``encode`` also enforces IDNA 2008 label rules (no ``_``, …)
    that the url crate does not, so only its mapping table is used and labels are
    punycoded here.
    """
    try:
        mapped = idna.uts46_remap(domain, std3_rules=False, transitional=False)
        parts = mapped.split(".")
        # UTS 46 CheckBidi: once any label is right-to-left, every label must obey RFC 5893.
        bidi = any(unicodedata.bidirectional(ch) in ("R", "AL", "AN") for ch in mapped)
        labels = []
        for label in parts:
            if bidi and label:
                idna.check_bidi(label, check_ltr=True)
            if label.startswith("xn--"):
                # An A-label must decode to a valid, already-mapped non-ASCII U-label.
                if not label.isascii():
                    raise idna.IDNAError("non-ASCII A-label")
                decoded = label[4:].encode("ascii").decode("punycode")
                if decoded.isascii() or idna.uts46_remap(decoded, False, False) != decoded:
                    raise idna.IDNAError("invalid A-label")
                _check_u_label(decoded)
                labels.append(label)
            elif label.isascii():
                labels.append(label)
            else:
                _check_u_label(label)
                labels.append("xn--" + label.encode("punycode").decode("ascii"))
    except (idna.IDNAError, UnicodeError, ValueError):
        raise RelayUrlParseError(f"invalid international host {text!r}") from None
    return ".".join(labels)


def _parse_host(text: str) -> tuple[str, bool]:
    """Return (serialised host, is_ipv6)."""
    if text.startswith("["):
        if not text.endswith("]") or "%" in text:
            raise RelayUrlParseError(f"invalid IPv6 host {text!r}")
        try:
            addr = ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise RelayUrlParseError(f"invalid IPv6 host {text!r}") from None
        return f"[{_serialize_ipv6(addr)}]", True
    if not text:
        raise RelayUrlParseError("empty host")
    try:
        domain = _pct_decode(text).decode("utf-8")
    except UnicodeDecodeError:
        raise RelayUrlParseError(f"host is not UTF-8: {text!r}") from None
    if domain.isascii() and "xn--" not in domain.lower():
        domain = domain.lower()
    else:
        domain = _domain_to_ascii(domain, text)
    if not domain or any(c in _FORBIDDEN_DOMAIN for c in domain):
        raise RelayUrlParseError(f"invalid host {text!r}")
    if _ends_in_number(domain):
        return _parse_ipv4(domain), False
    return domain, False


def _normalise_path(raw: str) -> str:
    segments: list[str] = []
    parts = raw.replace("\\", "/").split("/")
    # raw starts with "/" (or is empty): the first element is always "".
    parts = parts[1:] if parts and parts[0] == "" else parts
    for idx, seg in enumerate(parts):
        last = idx == len(parts) - 1
        low = seg.lower()
        if low in _DOUBLE_DOT:
            if segments:
                segments.pop()
            if last:
                segments.append("")
        elif low in _SINGLE_DOT:
            if last:
                segments.append("")
        else:
            segments.append(_pct_encode(seg, _PATH_SET))
    return "/" + "/".join(segments)


class RelayUrl:
    """A relay server URL (``http``/``https``), compared by its normalised string form.

    ``RelayUrl("https://Example.com")`` and ``RelayUrl.parse(...)`` accept anything Rust's
    URL parser accepts for these schemes; ``str()`` gives the normalised form
    (``https://example.com/``). Malformed input raises :class:`RelayUrlParseError`, a
    :class:`~aioiroh.errors.DecodeError`.
    """

    __slots__ = ("_fragment", "_host", "_path", "_port", "_query", "_scheme", "_str", "_userinfo")

    def __init__(self, url: str | RelayUrl) -> None:
        if isinstance(url, RelayUrl):
            text = url._str
        elif isinstance(url, str):
            text = url
        else:
            raise RelayUrlParseError(f"relay URL must be a str, not {type(url).__name__}")
        self._parse(text)

    @classmethod
    def parse(cls, text: str) -> RelayUrl:
        """Parse and normalise ``text``; raise :class:`RelayUrlParseError` if malformed."""
        return cls(text)

    def _parse(self, text: str) -> None:
        if len(text) > MAX_URL_LENGTH:
            raise RelayUrlParseError(f"relay URL longer than {MAX_URL_LENGTH} characters")
        text = text.strip(_C0_OR_SPACE).replace("\t", "").replace("\n", "").replace("\r", "")
        m = _SCHEME_RE.match(text)
        if m is None:
            raise RelayUrlParseError(f"relay URL has no scheme: {text[:80]!r}")
        scheme = m.group(1).lower()
        if scheme not in DEFAULT_PORTS:
            raise RelayUrlParseError(f"unsupported relay URL scheme {scheme!r}")
        rest = text[m.end() :].lstrip("/\\")
        end = len(rest)
        for stop in "/\\?#":
            pos = rest.find(stop)
            if pos != -1:
                end = min(end, pos)
        authority, rest = rest[:end], rest[end:]

        userinfo = ""
        if "@" in authority:
            raw_user, authority = authority.rsplit("@", 1)
            user, _, password = raw_user.partition(":")
            userinfo = _pct_encode(user, _USERINFO_SET)
            if password:
                userinfo += ":" + _pct_encode(password, _USERINFO_SET)
            if userinfo:
                userinfo += "@"
        host_text, port_text = authority, ""
        bracket_end = authority.rfind("]")
        colon = authority.rfind(":")
        if colon > bracket_end:
            host_text, port_text = authority[:colon], authority[colon + 1 :]
        host, _ = _parse_host(host_text)
        port: int | None = None
        if port_text:
            if not port_text.isascii() or not port_text.isdigit():
                raise RelayUrlParseError(f"invalid port {port_text!r}")
            port = int(port_text)
            if port > 0xFFFF:
                raise RelayUrlParseError(f"port out of range: {port}")
            if port == DEFAULT_PORTS[scheme]:
                port = None

        fragment: str | None = None
        if "#" in rest:
            rest, frag = rest.split("#", 1)
            fragment = _pct_encode(frag, _FRAGMENT_SET)
        query: str | None = None
        if "?" in rest:
            rest, q = rest.split("?", 1)
            query = _pct_encode(q, _QUERY_SET)
        path = _normalise_path(rest)

        self._scheme = scheme
        self._userinfo = userinfo
        self._host = host
        self._port = port
        self._path = path
        self._query = query
        self._fragment = fragment
        self._str = self._serialise(scheme, path)

    def _serialise(self, scheme: str, path: str) -> str:
        out = f"{scheme}://{self._userinfo}{self._host}"
        if self._port is not None:
            out += f":{self._port}"
        out += path
        if self._query is not None:
            out += "?" + self._query
        if self._fragment is not None:
            out += "#" + self._fragment
        return out

    @property
    def scheme(self) -> str:
        """The lowercase scheme: ``http``, ``https``, ``ws`` or ``wss``."""
        return self._scheme

    @property
    def host(self) -> str:
        """The host, ready for a socket call: IPv6 without brackets, a trailing dot kept."""
        return self._host[1:-1] if self._host.startswith("[") else self._host

    @property
    def host_str(self) -> str:
        """The host as it appears in the URL (IPv6 in brackets), like Rust's ``host_str``."""
        return self._host

    @property
    def port(self) -> int:
        """The effective port: the explicit one, else the scheme's default (80 or 443)."""
        return self._port if self._port is not None else DEFAULT_PORTS[self._scheme]

    @property
    def explicit_port(self) -> int | None:
        """The port written in the URL, or None when it is the scheme default."""
        return self._port

    @property
    def path(self) -> str:
        """The normalised path (at least ``/``)."""
        return self._path

    @property
    def is_secure(self) -> bool:
        """True for ``https``/``wss`` (TLS to the relay)."""
        return self._scheme in ("https", "wss")

    def websocket_url(self) -> str:
        """The URL the relay client dials: path ``/relay``, ``http``→``ws``, else ``wss``.

        Mirrors iroh-relay's client (wire doc §5.1); query and fragment are kept as the
        ``url`` crate's ``set_path`` keeps them.
        """
        scheme = "ws" if self._scheme in ("http", "ws") else "wss"
        return self._serialise(scheme, RELAY_PATH)

    def __str__(self) -> str:
        return self._str

    def __repr__(self) -> str:
        return f"RelayUrl({self._str!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RelayUrl) and other._str == self._str

    def __lt__(self, other: RelayUrl) -> bool:
        if not isinstance(other, RelayUrl):
            return NotImplemented
        # Rust orders Url by its serialisation; ours is ASCII, so str order = byte order.
        return self._str < other._str

    def __hash__(self) -> int:
        return hash(self._str)

    def __reduce__(self) -> tuple[type[RelayUrl], tuple[str]]:
        return (RelayUrl, (self._str,))
