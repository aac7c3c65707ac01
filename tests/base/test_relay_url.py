"""RelayUrl: Rust's (WHATWG) normalisation, websocket URL, errors (wire doc §5.1, §7.3)."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aioiroh.base.relay_url import RelayUrl, RelayUrlParseError
from aioiroh.errors import DecodeError

# (input, normalised) pairs; each was checked against Rust iroh 1.4.1 via PyPI iroh.
NORMALISATION = [
    ("https://example.com", "https://example.com/"),
    ("https://example.com.", "https://example.com./"),
    ("https://example.com./", "https://example.com./"),
    ("https://Example.COM", "https://example.com/"),
    ("HTTP://a.b:0", "http://a.b:0/"),
    ("http://127.0.0.1:3340", "http://127.0.0.1:3340/"),
    ("https://example.com:443/foo", "https://example.com/foo"),
    ("https://EXAMPLE.com:0443", "https://example.com/"),
    ("http://1.2.3.4:80", "http://1.2.3.4/"),
    ("http://[::FFFF:1.2.3.4]:80", "http://[::ffff:102:304]/"),
    ("https://[0:0::0:1]:8443/", "https://[::1]:8443/"),
    ("https://[1:0:0:1:0:0:0:1]", "https://[1:0:0:1::1]/"),
    ("https://0x7f.1/", "https://127.0.0.1/"),
    ("https://1.2.3", "https://1.2.0.3/"),
    ("http://4294967295", "http://255.255.255.255/"),
    ("https://ex%41mple.com", "https://example.com/"),
    ("https://bücher.de", "https://xn--bcher-kva.de/"),
    ("https://u:p@x.y/a?b#c", "https://u:p@x.y/a?b#c"),
    ("https://x.y/a b", "https://x.y/a%20b"),
    ("https://x.y/a/../b", "https://x.y/b"),
    ("https://x.y/%2e%2E/a", "https://x.y/a"),
    ("https://x.y?q", "https://x.y/?q"),
    ("https://x.y#f", "https://x.y/#f"),
    ("https://x.y:", "https://x.y/"),
    ("  https://x.y  ", "https://x.y/"),
    ("https:x.y", "https://x.y/"),
    ("https:\\\\x.y\\p", "https://x.y/p"),
    ("ws://x.y", "ws://x.y/"),
    ("https://XN--BCHER-KVA.de", "https://xn--bcher-kva.de/"),
    ("https://_\u00e9.example", "https://xn--_-bga.example/"),
]

MALFORMED = [
    "",
    "example.com",
    "ftp://x.y",
    "https://",
    "https://256.1.1.1",
    "http://4294967296",
    "https://x.y:65536",
    "https://x.y:8x",
    "https://[::1",
    "https://[fe80::1%eth0]",
    "https://a b.c",
    "https://%zz",
    "https://xn--a.example",
    "https://a\u200db.example",
    "https://\u094da.example",
    "https://" + "a" * 3000,
]


@pytest.mark.parametrize(("text", "expected"), NORMALISATION)
def test_normalisation(text: str, expected: str) -> None:
    url = RelayUrl(text)
    assert str(url) == expected
    assert RelayUrl.parse(expected) == url
    assert hash(RelayUrl(expected)) == hash(url)


def test_trailing_dot_is_a_different_relay() -> None:
    assert RelayUrl("https://example.com") != RelayUrl("https://example.com.")


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed(text: str) -> None:
    with pytest.raises(RelayUrlParseError) as info:
        RelayUrl(text)
    assert isinstance(info.value, DecodeError)
    assert isinstance(info.value, ValueError)


def test_not_a_str() -> None:
    with pytest.raises(DecodeError):
        RelayUrl(b"https://x.y")  # type: ignore[arg-type]


def test_components() -> None:
    url = RelayUrl("https://Relay.Example.com.:8443/x")
    assert (url.scheme, url.host, url.port, url.explicit_port) == (
        "https",
        "relay.example.com.",
        8443,
        8443,
    )
    assert url.path == "/x"
    assert url.is_secure
    plain = RelayUrl("http://127.0.0.1")
    assert (plain.port, plain.explicit_port, plain.is_secure) == (80, None, False)
    v6 = RelayUrl("http://[::1]:3340")
    assert (v6.host, v6.host_str, v6.port) == ("::1", "[::1]", 3340)
    assert RelayUrl("https://x.y").port == 443


@pytest.mark.parametrize(
    ("text", "ws"),
    [
        ("https://example.com", "wss://example.com/relay"),
        ("https://example.com.:8443/foo/bar", "wss://example.com.:8443/relay"),
        ("http://127.0.0.1:3340", "ws://127.0.0.1:3340/relay"),
        ("http://[::1]:80/", "ws://[::1]/relay"),
        ("https://x.y:80", "wss://x.y:80/relay"),
    ],
)
def test_websocket_url(text: str, ws: str) -> None:
    assert RelayUrl(text).websocket_url() == ws


def test_ordering_and_pickle() -> None:
    urls = [RelayUrl("https://b.example/"), RelayUrl("http://z.example/"), RelayUrl("https://a.x")]
    assert [str(u) for u in sorted(urls)] == [
        "http://z.example/",
        "https://a.x/",
        "https://b.example/",
    ]
    assert pickle.loads(pickle.dumps(urls[0])) == urls[0]
    assert RelayUrl(urls[0]) == urls[0]
    assert repr(urls[2]) == "RelayUrl('https://a.x/')"


@given(st.text(max_size=60))
def test_random_text_parses_or_raises_our_error(text: str) -> None:
    try:
        url = RelayUrl("https://" + text)
    except DecodeError:
        return
    # Normalisation is idempotent.
    assert RelayUrl(str(url)) == url
    assert str(RelayUrl(str(url))) == str(url)
