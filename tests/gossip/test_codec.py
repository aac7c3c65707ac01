"""Codec vectors, round trips and rejection of malformed input for the gossip wire."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioiroh.base.key import SecretKey
from aioiroh.base.relay_url import RelayUrl
from aioiroh.errors import DecodeError, IrohError
from aioiroh.gossip.framing import (
    FrameDecoder,
    MessageTooLarge,
    decode_stream_header,
    encode_frame,
    encode_stream_header,
    frame_message,
)
from aioiroh.gossip.messages import (
    DEFAULT_MAX_MESSAGE_SIZE,
    AddrInfo,
    DeliveryScope,
    Disconnect,
    ForwardJoin,
    Gossip,
    GossipDecodeError,
    Graft,
    IHave,
    IHaveMsg,
    Join,
    MessageId,
    Neighbor,
    PeerData,
    PeerInfo,
    Priority,
    ProtoMessage,
    Prune,
    Shuffle,
    ShuffleReply,
    TopicId,
    decode_message,
    decode_proto_message,
    encode_message,
    encode_proto_message,
)
from aioiroh.gossip.proto import Plumtree, PlumtreeConfig

KEYS = [SecretKey.from_bytes(bytes([i + 1]) * 32).public() for i in range(6)]
K0 = KEYS[0]
TOPIC = TopicId(bytes(range(32)))


# -- vectors: the byte layout serde + postcard give the Rust types ----------------------------


def test_join_without_peer_data_is_three_zero_bytes() -> None:
    # topic::Message::Swarm(0) / hyparview::Message::Join(0) / Option::None
    assert encode_message(Join(None)) == b"\x00\x00\x00"
    assert encode_message(Join(PeerData(b"ab"))) == b"\x00\x00\x01\x02ab"


def test_disconnect_carries_alive_and_the_obsolete_respond_flag() -> None:
    assert encode_message(Disconnect(True)) == b"\x00\x05\x01\x00"
    assert decode_message(b"\x00\x05\x00\x01") == Disconnect(False, True)


def test_neighbor_priority_is_an_enum_index() -> None:
    assert encode_message(Neighbor(Priority.HIGH, None)) == b"\x00\x04\x00\x00"
    assert encode_message(Neighbor(Priority.LOW, PeerData(b"x"))) == b"\x00\x04\x01\x01\x01x"


def test_forward_join_and_shuffle_layouts() -> None:
    key = K0.to_bytes()
    fj = ForwardJoin(PeerInfo(K0, None), 6)
    assert encode_message(fj) == b"\x00\x01" + key + b"\x00\x06"
    sh = Shuffle(K0, (PeerInfo(K0, PeerData(b"d")),), 300)
    # ttl 300 as a u16 varint: ac 02
    assert encode_message(sh) == b"\x00\x02" + key + b"\x01" + key + b"\x01\x01d" + b"\xac\x02"
    assert encode_message(ShuffleReply(())) == b"\x00\x03\x00"


def test_plumtree_layouts() -> None:
    content = b"hi"
    mid = MessageId.from_content(content)
    assert encode_message(Prune()) == b"\x01\x01"
    assert (
        encode_message(Gossip(mid, content, DeliveryScope(0)))
        == b"\x01\x00" + mid + b"\x02hi\x00\x00"
    )
    assert encode_message(Gossip(mid, content, DeliveryScope(None)))[-1:] == b"\x01"
    assert encode_message(Graft(None, 2)) == b"\x01\x02\x00\x02"
    assert encode_message(Graft(mid, 1)) == b"\x01\x02\x01" + mid + b"\x01"
    assert encode_message(IHaveMsg((IHave(mid, 128),))) == b"\x01\x03\x01" + mid + b"\x80\x01"


def test_message_id_is_blake3_of_content() -> None:
    # blake3("") from the BLAKE3 spec test vectors.
    assert MessageId.from_content(b"").hex() == (
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    )


def test_v0_proto_message_prefixes_the_topic() -> None:
    msg = ProtoMessage(TOPIC, Prune())
    assert encode_proto_message(msg) == bytes(TOPIC) + b"\x01\x01"
    assert decode_proto_message(bytes(TOPIC) + b"\x01\x01") == msg


def test_stream_header_is_a_frame_of_the_raw_topic_id() -> None:
    assert encode_stream_header(TOPIC) == b"\x00\x00\x00\x20" + bytes(TOPIC)
    assert decode_stream_header(bytes(TOPIC)) == TOPIC
    with pytest.raises(GossipDecodeError):
        decode_stream_header(bytes(31))


def test_peer_data_is_postcard_addr_info_sorted_like_a_btreeset() -> None:
    info = AddrInfo(
        RelayUrl("https://relay.example./"),
        (("::1", 5), ("10.0.0.2", 7), ("10.0.0.1", 9)),
    )
    url = str(info.relay_url).encode()
    expected = (
        b"\x01"
        + bytes([len(url)])
        + url
        + b"\x03"
        + b"\x00\x0a\x00\x00\x01\x09"
        + b"\x00\x0a\x00\x00\x02\x07"
        + b"\x01"
        + bytes(15)
        + b"\x01\x05"
    )
    assert info.encode() == expected
    back = AddrInfo.decode(expected)
    assert back.relay_url == info.relay_url
    assert sorted(back.direct_addresses) == sorted(info.direct_addresses)
    assert AddrInfo.decode(b"") == AddrInfo()  # empty peer data: nothing known (as Rust)
    assert AddrInfo().encode() == b"\x00\x00"


def test_ihave_batches_match_rusts_chunking() -> None:
    # Rust: (max_message_size - 33 header - 3) // IHave::POSTCARD_MAX_SIZE (35) = 116.
    pt: Plumtree[int] = Plumtree(0, PlumtreeConfig(), DEFAULT_MAX_MESSAGE_SIZE - 33)
    assert pt.ihave_chunk == 116
    worst = IHaveMsg(tuple(IHave(MessageId(bytes(32)), 0xFFFF) for _ in range(116)))
    assert len(encode_proto_message(ProtoMessage(TOPIC, worst))) < DEFAULT_MAX_MESSAGE_SIZE


# -- round trips ---------------------------------------------------------------------------

keys = st.sampled_from(KEYS)
u16 = st.integers(0, 0xFFFF)
ids = st.binary(min_size=32, max_size=32).map(MessageId)
peer_data = st.none() | st.binary(max_size=64).map(PeerData)
peer_infos = st.builds(PeerInfo, keys, peer_data)
nodes = st.lists(peer_infos, max_size=8).map(tuple)


@st.composite
def gossips(draw: st.DrawFn) -> Gossip:
    content = draw(st.binary(max_size=256))
    scope = DeliveryScope(draw(st.none() | u16))
    return Gossip(MessageId.from_content(content), content, scope)


messages = st.one_of(
    st.builds(Join, peer_data),
    st.builds(ForwardJoin, peer_infos, u16),
    st.builds(Shuffle, keys, nodes, u16),
    st.builds(ShuffleReply, nodes),
    st.builds(Neighbor, st.sampled_from(list(Priority)), peer_data),
    st.builds(Disconnect, st.booleans(), st.booleans()),
    gossips(),
    st.just(Prune()),
    st.builds(Graft, st.none() | ids, u16),
    st.builds(IHaveMsg, st.lists(st.builds(IHave, ids, u16), max_size=8).map(tuple)),
)


@given(messages)
@settings(max_examples=300, deadline=None)
def test_every_message_round_trips_through_both_framings(msg: object) -> None:
    assert decode_message(encode_message(msg)) == msg  # type: ignore[arg-type]
    proto = ProtoMessage(TOPIC, msg)  # type: ignore[arg-type]
    assert decode_proto_message(encode_proto_message(proto)) == proto
    dec = FrameDecoder()
    dec.feed(frame_message(msg))  # type: ignore[arg-type]
    assert dec.next_message() == msg
    assert dec.at_clean_end()


@given(
    st.lists(st.ip_addresses(), max_size=5),
    st.integers(0, 0xFFFF),
)
def test_addr_info_round_trips(ips: list[object], port: int) -> None:
    info = AddrInfo(None, tuple((str(ip), port) for ip in ips))
    back = AddrInfo.decode(info.encode())
    canon = AddrInfo.decode(back.encode())
    assert set(back.direct_addresses) == set(canon.direct_addresses)
    assert len(back.direct_addresses) == len({(str(ip), port) for ip in ips})


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_garbage_never_escapes_as_anything_but_a_decode_error(data: bytes) -> None:
    for decode in (decode_message, decode_proto_message, AddrInfo.decode):
        try:
            decode(data)  # type: ignore[operator]
        except DecodeError:
            pass


@given(messages, st.data())
@settings(max_examples=200, deadline=None)
def test_truncated_or_padded_messages_are_rejected(msg: object, data: st.DataObject) -> None:
    raw = encode_message(msg)  # type: ignore[arg-type]
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(GossipDecodeError):
        decode_message(raw[:cut])
    with pytest.raises(GossipDecodeError):
        decode_message(raw + b"\x00")


# -- rejections ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"\x02\x00",  # unknown layer
        b"\x00\x06",  # unknown swarm message
        b"\x01\x04",  # unknown gossip message
        b"\x00\x05\x02\x00",  # bool 2
        b"\x00\x00\x02",  # option tag 2
        b"\x00\x04\x02\x00",  # priority 2
        b"\x01\x02\x00\x80\x80\x04",  # round overflows u16
        b"\x01\x03\xff\xff\xff\x0f",  # IHave count far beyond the bytes present
        b"\x00\x03\x05",  # ShuffleReply claims 5 peers, has none
    ],
)
def test_malformed_messages_raise_gossip_decode_error(raw: bytes) -> None:
    with pytest.raises(GossipDecodeError) as info:
        decode_message(raw)
    assert isinstance(info.value, IrohError)


def test_peer_ids_that_are_not_curve_points_are_rejected() -> None:
    bad = bytes([2]) + bytes(31)  # y = 2 is not on the Ed25519 curve
    with pytest.raises(DecodeError):
        decode_message(b"\x00\x01" + bad + b"\x00\x00")


def test_gossip_with_a_spoofed_id_decodes_but_does_not_validate() -> None:
    msg = Gossip(MessageId.from_content(b"a"), b"b", DeliveryScope(0))
    back = decode_message(encode_message(msg))
    assert isinstance(back, Gossip)
    assert not back.validate()


def test_frame_length_above_the_limit_is_refused_before_buffering() -> None:
    dec = FrameDecoder(4096)
    dec.feed(struct.pack(">I", 4097))
    with pytest.raises(GossipDecodeError):
        dec.next_frame()
    dec = FrameDecoder(4096)
    dec.feed(struct.pack(">I", 0xFFFFFFFF) + b"x" * 10)
    with pytest.raises(GossipDecodeError):
        dec.next_frame()


def test_frames_split_at_any_byte_boundary_reassemble() -> None:
    frames = b"".join(frame_message(m) for m in (Prune(), Join(None), Disconnect(True)))
    dec = FrameDecoder()
    out = []
    for i in range(len(frames)):
        dec.feed(frames[i : i + 1])
        while (m := dec.next_message()) is not None:
            out.append(m)
    assert out == [Prune(), Join(None), Disconnect(True)]
    assert dec.at_clean_end()


def test_writer_refuses_a_body_as_large_as_the_limit() -> None:
    encode_frame(bytes(4095))
    with pytest.raises(MessageTooLarge):
        encode_frame(bytes(4096))


def test_topic_id_text_and_name_forms() -> None:
    t = TopicId.from_name("chat")
    assert TopicId.parse(str(t)) == t
    with pytest.raises(GossipDecodeError):
        TopicId.parse("zz")


# -- vectors captured from Rust iroh-gossip 0.35 (frames its peer sent us in test_rust035) --

RUST035_FRAMES = {
    "Disconnect": "6de2594cf2dea803ae0e0bfb6a9b7401b7ddbe1fd01ea89ff21f3089784b618500050100",
    "Join": (
        "6de2594cf2dea803ae0e0bfb6a9b7401b7ddbe1fd01ea89ff21f3089784b618500000142012368747470"
        "733a2f2f757365312d312e72656c61792e69726f682e6e6574776f726b2e2f02007f000001fbce030100"
        "000000000000000000000000000001fdb603"
    ),
    "Neighbor": (
        "6de2594cf2dea803ae0e0bfb6a9b7401b7ddbe1fd01ea89ff21f3089784b618500040001420123687474"
        "70733a2f2f757365312d312e72656c61792e69726f682e6e6574776f726b2e2f02007f000001fbce0301"
        "00000000000000000000000000000001fdb603"
    ),
    "ForwardJoin": (
        "6de2594cf2dea803ae0e0bfb6a9b7401b7ddbe1fd01ea89ff21f3089784b618500018de8f1cc898bd3c5"
        "a73f09c3167ae62fd3bb456614446096163486f5f46a74ec010a0001007f000001d9dd0205"
    ),
    "Gossip": (
        "6de2594cf2dea803ae0e0bfb6a9b7401b7ddbe1fd01ea89ff21f3089784b61850100a6452ddf647556ea"
        "9b15a1403f87555e5da1a91defcfdc2a00f1a209d8849e1e1468656c6c6f2066726f6d20727573742030"
        "2e33350000"
    ),
    "Prune": ("6de2594cf2dea803ae0e0bfb6a9b7401b7ddbe1fd01ea89ff21f3089784b61850101"),
    "IHaveMsg": (
        "6de2594cf2dea803ae0e0bfb6a9b7401b7ddbe1fd01ea89ff21f3089784b6185010302874211464021aa"
        "caf7722c51b961ab4ffa0abe1fd840d5926ef7df484ad7538200d9d4e93b6fea2d761c3521f5131f2e79"
        "0ce1f12a9fdcdadc474ac26aa7ebb32802"
    ),
    "Graft": (
        "6de2594cf2dea803ae0e0bfb6a9b7401b7ddbe1fd01ea89ff21f3089784b618501020191a4e4b9447fc2"
        "adc18bb04a120b68765a800d692d7063750050c4579ee8fe4300"
    ),
}


@pytest.mark.parametrize("kind", sorted(RUST035_FRAMES))
def test_frames_from_rust_0_35_decode_and_reencode_byte_identically(kind: str) -> None:
    body = bytes.fromhex(RUST035_FRAMES[kind])
    msg = decode_proto_message(body)
    assert type(msg.message).__name__ == kind
    assert msg.topic == TopicId.from_name("aioiroh-rust035-interop")
    assert encode_proto_message(msg) == body


def test_rust_0_35_frames_carry_what_we_expect() -> None:
    join = decode_proto_message(bytes.fromhex(RUST035_FRAMES["Join"])).message
    assert isinstance(join, Join) and join.data is not None
    info = join.data.addr_info()  # Rust's postcard(AddrInfo { relay_url, direct_addresses })
    assert str(info.relay_url).startswith("https://") and str(info.relay_url).endswith("./")
    assert [h for h, _ in info.direct_addresses] == ["127.0.0.1", "::1"]
    neighbor = decode_proto_message(bytes.fromhex(RUST035_FRAMES["Neighbor"])).message
    assert isinstance(neighbor, Neighbor) and neighbor.priority is Priority.HIGH
    fj = decode_proto_message(bytes.fromhex(RUST035_FRAMES["ForwardJoin"])).message
    assert isinstance(fj, ForwardJoin) and fj.ttl == 5 and fj.peer.data is not None
    gossip = decode_proto_message(bytes.fromhex(RUST035_FRAMES["Gossip"])).message
    assert isinstance(gossip, Gossip) and gossip.validate()
    assert gossip.content == b"hello from rust 0.35" and gossip.scope == DeliveryScope(0)
    ihave = decode_proto_message(bytes.fromhex(RUST035_FRAMES["IHaveMsg"])).message
    assert isinstance(ihave, IHaveMsg) and len(ihave.ihaves) == 2
    graft = decode_proto_message(bytes.fromhex(RUST035_FRAMES["Graft"])).message
    assert isinstance(graft, Graft) and graft.id is not None
    # 0.35 evicting a neighbor: Disconnect { alive: true, respond: false }.
    disc = decode_proto_message(bytes.fromhex(RUST035_FRAMES["Disconnect"])).message
    assert disc == Disconnect(True, False)
