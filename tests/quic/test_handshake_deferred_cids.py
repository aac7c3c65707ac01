"""The client's Finished flight carries no NEW_CONNECTION_ID frames; they follow at once."""

from __future__ import annotations

from aioiroh.base.key import SecretKey
from aioiroh.quic.connection import IrohConnection

CLIENT, SERVER = ("127.0.0.1", 1), ("127.0.0.1", 2)


def test_client_cids_follow_the_finished_flight() -> None:
    ck, sk = SecretKey.generate(), SecretKey.generate()
    client = IrohConnection(secret_key=ck, is_client=True, alpns=[b"a"], expected_peer=sk.public())
    now = 1.0
    client.connect(SERVER, now)
    hello = client.datagrams_to_send(now)
    server = IrohConnection(
        secret_key=sk,
        is_client=False,
        alpns=[b"a"],
        original_destination_connection_id=client.cids.peer_cid,
    )
    for data, _ in hello:
        server.receive_datagram(data, CLIENT, now)
    for data, _ in server.datagrams_to_send(now):
        client.receive_datagram(data, SERVER, now)
    assert client._handshake_complete
    # Nothing issued yet: the Finished flight goes out without CID frames.
    assert client.cids.to_announce == [] and len(client.cids.host_cids) == 1
    finished = client.datagrams_to_send(now)
    for data, _ in finished:
        server.receive_datagram(data, CLIENT, now)
    assert server._handshake_complete
    assert 1 not in server.cids.peer_cids
    # The timer is due at once and issues path 0's spares and every further path id's CIDs.
    timer = client.get_timer()
    assert timer is not None and timer <= now
    client.handle_timer(now)
    for data, _ in client.datagrams_to_send(now):
        server.receive_datagram(data, CLIENT, now)
    assert len(server.cids.peer_cids[0]) == 5
    assert all(len(server.cids.peer_cids[p]) == 2 for p in range(1, 8))
