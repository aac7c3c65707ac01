"""Connection-ID bookkeeping of the native engine, per path id; sans-I/O.

Owns :class:`ConnectionIds`: the CIDs we issue (path 0's up to the peer's
active_connection_id_limit, CIDS_PER_PATH for each further path id), the routing map from a
CID to its path id, the peer's CIDs per path id with path 0's active one and retire_prior_to,
and the NEW_CONNECTION_ID / RETIRE_CONNECTION_ID frames (or their PATH_* variants) still to
send. Paths, timers and the choice of when to issue per-path CIDs stay with the connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from aioquic.quic import events
from aioquic.quic.packet_builder import QuicDeliveryState

from .aioquic_connection import CID_LENGTH
from .frames import PROTOCOL_VIOLATION, FrameType, NewConnectionIdFrame, QuicProtocolViolation
from .packet_writer import PacketSink

__all__ = ["ConnectionIds"]

CONNECTION_ID_LIMIT_ERROR: Final = 0x9
ACTIVE_CID_LIMIT: Final = 5
"""active_connection_id_limit we send (iroh's value)."""
CIDS_PER_PATH: Final = 2
"""CIDs we keep issued for each further path id (one in use plus a spare)."""
MAX_PEER_CIDS_PER_PATH: Final = 16
"""Bound on connection IDs stored per path id (the peer may not exceed our limit of 5)."""
MAX_PENDING_RETIRES: Final = 64
"""Bound on RETIRE_CONNECTION_ID frames waiting to be sent; a peer forcing more is an error."""
MAX_REMOTE_PATHS: Final = 16
"""Bound on path ids we keep peer CIDs for (we allow at most 8)."""


class ConnectionIds:
    """Our CIDs and the peer's, per path id.

    ``cid_path`` and ``host_cid_set`` are mutated in place, never rebound: the connection keeps
    references to them for its per-packet receive path.
    """

    def __init__(
        self, random_bytes: Callable[[int], bytes], emit: Callable[[events.QuicEvent], None]
    ) -> None:
        self._random = random_bytes
        self._emit = emit
        self.host_cid = random_bytes(CID_LENGTH)
        """A live CID of ours on path 0 (the endpoint routes by it at setup)."""
        # Our CIDs: sequence -> (cid, reset token); sequence 0 is host_cid.
        self.host_cids: dict[int, tuple[bytes, bytes]] = {0: (self.host_cid, random_bytes(16))}
        self.host_cid_set: set[bytes] = {self.host_cid}
        self.host_seq = 0
        self.path_host_cids: dict[int, dict[int, tuple[bytes, bytes]]] = {}
        self.path_host_seq: dict[int, int] = {}
        self.path_cids_issued_upto = 0
        self.cid_path: dict[bytes, int] = {self.host_cid: 0}
        # (path id, sequence) of our CIDs still to announce.
        self.to_announce: list[tuple[int, int]] = []
        # Peer CIDs per path id: sequence -> cid; path 0's active one is peer_cid.
        self.peer_cids: dict[int, dict[int, bytes]] = {0: {}}
        self.peer_cid = b""
        self.peer_cid_seq = 0
        self.peer_cid_set = False
        self.peer_cid_limit = 2
        self.retire_prior_to = 0
        self.to_retire: list[tuple[int | None, int]] = []

    # -- ours ------------------------------------------------------------------------------

    def issue(self) -> None:
        """Give the peer spare CIDs up to its active_connection_id_limit (max ours)."""
        limit = min(self.peer_cid_limit, ACTIVE_CID_LIMIT)
        while len(self.host_cids) < limit:
            self.host_seq += 1
            cid = self._random(CID_LENGTH)
            self.host_cids[self.host_seq] = (cid, self._random(16))
            self.host_cid_set.add(cid)
            self.cid_path[cid] = 0
            self.to_announce.append((0, self.host_seq))
            self._emit(events.ConnectionIdIssued(connection_id=cid))

    def on_retire(self, sequence: int) -> None:
        """The peer retired our path-0 CID ``sequence``."""
        if sequence > self.host_seq:
            raise QuicProtocolViolation(
                "retiring a CID never issued",
                code=PROTOCOL_VIOLATION,
                frame_type=FrameType.RETIRE_CONNECTION_ID,
            )
        entry = self.host_cids.pop(sequence, None)
        if entry is None:
            return
        cid = entry[0]
        self.host_cid_set.discard(cid)
        self.cid_path.pop(cid, None)
        if cid == self.host_cid:
            # Keep routing by a live CID name; the endpoint uses host_cid only at setup.
            self.host_cid = next(iter(self.host_cids.values()))[0] if self.host_cids else cid
        self._emit(events.ConnectionIdRetired(connection_id=cid))
        self.issue()

    def issue_paths(self, upto: int) -> None:
        """Issue CIDs for every path id up to ``upto`` that has none yet."""
        while self.path_cids_issued_upto < upto:
            self.path_cids_issued_upto += 1
            path_id = self.path_cids_issued_upto
            self.path_host_cids[path_id] = {}
            self.path_host_seq[path_id] = -1
            for _ in range(CIDS_PER_PATH):
                self.issue_path(path_id)

    def issue_path(self, path_id: int) -> None:
        """Top ``path_id`` up to CIDS_PER_PATH live CIDs."""
        cids = self.path_host_cids.get(path_id)
        if cids is None or len(cids) >= CIDS_PER_PATH:
            return
        seq = self.path_host_seq[path_id] + 1
        self.path_host_seq[path_id] = seq
        cid = self._random(CID_LENGTH)
        cids[seq] = (cid, self._random(16))
        self.cid_path[cid] = path_id
        self.to_announce.append((path_id, seq))
        self._emit(events.ConnectionIdIssued(connection_id=cid))

    def on_retire_path(self, path_id: int, seq: int, *, reissue: bool) -> None:
        """The peer retired our CID ``seq`` of ``path_id``; ``reissue`` replaces it."""
        cids = self.path_host_cids.get(path_id)
        if cids is None:
            return
        if seq > self.path_host_seq.get(path_id, -1):
            raise QuicProtocolViolation(
                "retiring a CID never issued",
                code=PROTOCOL_VIOLATION,
                frame_type=FrameType.PATH_RETIRE_CONNECTION_ID,
            )
        entry = cids.pop(seq, None)
        if entry is None:
            return
        self.cid_path.pop(entry[0], None)
        self._emit(events.ConnectionIdRetired(connection_id=entry[0]))
        if reissue:
            self.issue_path(path_id)

    def retire_path(self, path_id: int) -> None:
        """Drop all our CIDs of a path that is gone."""
        for cid, _token in self.path_host_cids.pop(path_id, {}).values():
            self.cid_path.pop(cid, None)
            self._emit(events.ConnectionIdRetired(connection_id=cid))

    def retire_all(self) -> None:
        """The connection is over: report every CID but the first as retired."""
        for seq in list(self.host_cids):
            if seq:
                self._emit(events.ConnectionIdRetired(connection_id=self.host_cids[seq][0]))
        for path_id in list(self.path_host_cids):
            self.retire_path(path_id)

    def reannounce_path(self, path_id: int) -> None:
        """Queue the live CIDs of ``path_id`` again (the peer says it has none)."""
        for seq in self.path_host_cids.get(path_id, {}):
            if (path_id, seq) not in self.to_announce:
                self.to_announce.append((path_id, seq))

    # -- the peer's ------------------------------------------------------------------------

    def on_new_cid(
        self,
        frame: NewConnectionIdFrame,
        local_max_path_id: int,
        on_path_cid: Callable[[int], None],
    ) -> None:
        """Store a peer CID; ``on_path_cid(path_id)`` runs when one arrives for a further path."""
        path_id = frame.path_id or 0
        if path_id > local_max_path_id:
            raise QuicProtocolViolation(
                "CID for a path id above our maximum",
                code=PROTOCOL_VIOLATION,
                frame_type=FrameType.PATH_NEW_CONNECTION_ID,
            )
        cids = self.peer_cids.get(path_id)
        if cids is None:
            if len(self.peer_cids) >= MAX_REMOTE_PATHS:
                return
            cids = self.peer_cids[path_id] = {}
        if path_id == 0 and frame.sequence < self.retire_prior_to:
            # Already retired by an earlier retire_prior_to: retire it at once, but within the
            # same bound as any other retirement (a peer may send thousands of such frames).
            entry = (frame.path_id, frame.sequence)
            if entry not in self.to_retire:
                if len(self.to_retire) >= MAX_PENDING_RETIRES:
                    raise QuicProtocolViolation(
                        "too many connection IDs to retire",
                        code=CONNECTION_ID_LIMIT_ERROR,
                        frame_type=FrameType.NEW_CONNECTION_ID,
                    )
                self.to_retire.append(entry)
            return
        cids[frame.sequence] = frame.connection_id
        if path_id:
            on_path_cid(path_id)
        if path_id == 0 and frame.retire_prior_to > self.retire_prior_to:
            self.retire_prior_to = frame.retire_prior_to
            for seq in [s for s in cids if s < frame.retire_prior_to]:
                del cids[seq]
                self.to_retire.append((frame.path_id, seq))
            if self.peer_cid_seq < frame.retire_prior_to:
                self.peer_cid_seq = min(cids)
                self.peer_cid = cids[self.peer_cid_seq]
        if (
            len(cids) > max(ACTIVE_CID_LIMIT, MAX_PEER_CIDS_PER_PATH // 2) + 1
            or len(self.to_retire) > MAX_PENDING_RETIRES
        ):
            raise QuicProtocolViolation(
                "too many connection IDs",
                code=CONNECTION_ID_LIMIT_ERROR,
                frame_type=FrameType.NEW_CONNECTION_ID,
            )

    def first_peer_cid(self, path_id: int) -> tuple[int, bytes] | None:
        """The peer's lowest live (sequence, CID) for ``path_id``, if it sent any."""
        cids = self.peer_cids.get(path_id)
        if cids:
            seq = min(cids)
            return seq, cids[seq]
        return None

    # -- frames to send --------------------------------------------------------------------

    def write_announcements(self, builder: PacketSink, multipath: bool) -> None:
        """NEW_CONNECTION_ID (PATH_ variant with multipath) for each queued CID of ours."""
        to_announce = self.to_announce
        while to_announce:
            self._write_new_cid(builder, *to_announce[0], multipath)
            to_announce.pop(0)

    def _write_new_cid(self, builder: PacketSink, path_id: int, seq: int, multipath: bool) -> None:
        entry = (
            self.host_cids.get(seq)
            if path_id == 0
            else self.path_host_cids.get(path_id, {}).get(seq)
        )
        if entry is None:
            return
        cid, token = entry
        if multipath:
            buf = builder.start_frame(
                FrameType.PATH_NEW_CONNECTION_ID,
                capacity=52,
                handler=self._on_new_cid_delivery,
                handler_args=(path_id, seq),
            )
            buf.push_uint_var(path_id)
        else:
            buf = builder.start_frame(
                FrameType.NEW_CONNECTION_ID,
                capacity=44,
                handler=self._on_new_cid_delivery,
                handler_args=(path_id, seq),
            )
        buf.push_uint_var(seq)
        buf.push_uint_var(0)  # retire_prior_to
        buf.push_uint8(len(cid))
        buf.push_bytes(cid)
        buf.push_bytes(token)

    def write_retires(self, builder: PacketSink, multipath: bool) -> None:
        """RETIRE_CONNECTION_ID (PATH_ variant with multipath) for each queued peer CID."""
        to_retire = self.to_retire
        while to_retire:
            path_id, seq = to_retire[0]
            if multipath:
                buf = builder.start_frame(
                    FrameType.PATH_RETIRE_CONNECTION_ID,
                    capacity=16,
                    handler=self._on_retire_delivery,
                    handler_args=(path_id, seq),
                )
                buf.push_uint_var(path_id or 0)
            else:
                buf = builder.start_frame(
                    FrameType.RETIRE_CONNECTION_ID,
                    capacity=9,
                    handler=self._on_retire_delivery,
                    handler_args=(path_id, seq),
                )
            buf.push_uint_var(seq)
            to_retire.pop(0)

    def _on_new_cid_delivery(self, delivery: QuicDeliveryState, path_id: int, seq: int) -> None:
        if delivery == QuicDeliveryState.ACKED:
            return
        live = self.host_cids if path_id == 0 else self.path_host_cids.get(path_id, {})
        if seq in live:
            self.to_announce.append((path_id, seq))

    def _on_retire_delivery(
        self, delivery: QuicDeliveryState, path_id: int | None, seq: int
    ) -> None:
        if delivery != QuicDeliveryState.ACKED:
            self.to_retire.append((path_id, seq))
