"""`aioiroh send` / `aioiroh receive`: real processes, BLAKE3 checks, interrupted and resumed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from pathlib import Path

import pytest

from aioiroh.cli.transfer import (
    PART_SUFFIX,
    FileEntry,
    TransferTicket,
    decode_manifest,
    decode_request,
    encode_file_request,
    encode_manifest,
)
from aioiroh.errors import DecodeError

from ._run import PIPE, interrupt, json_event, run, running, spawn

pytestmark = pytest.mark.timeout(90)

LOOPBACK = ("--bind", "127.0.0.1:0")
BIG = 48 * 1024 * 1024


def write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        left = size
        while left:
            n = min(left, 1 << 20)
            fh.write(os.urandom(n))
            left -= n


def same(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while block := fa.read(1 << 20):
            if block != fb.read(len(block)):
                return False
    return True


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- pure parts ---------------------------------------------------------------------------


def test_manifest_round_trip_and_hostile_input() -> None:
    files = [FileEntry("d/a.bin", 5, b"\x01" * 32), FileEntry("d/e", 0, b"\x02" * 32)]
    data = encode_manifest(files)
    assert decode_manifest(data) == files
    for i in range(len(data)):
        for bad in (data[:i], data[:i] + b"\xff" + data[i + 1 :]):
            try:
                decode_manifest(bad)
            except DecodeError:
                pass
    for path in ("../x", "/etc/passwd", "a/../../b", "a//b", "a/./b", "", "x" + PART_SUFFIX):
        bad = encode_manifest([FileEntry(path, 1, b"\x00" * 32)])
        with pytest.raises(DecodeError):
            decode_manifest(bad)
    with pytest.raises(DecodeError):
        decode_manifest(encode_manifest(files + files))  # duplicate paths


def test_ticket_and_request_codecs() -> None:
    from aioiroh.base.endpoint_addr import EndpointAddr
    from aioiroh.base.key import SecretKey
    from aioiroh.base.ticket import EndpointTicket

    addr = EndpointAddr(SecretKey.generate().public(), None, [("127.0.0.1", 4242)])
    ticket = TransferTicket(EndpointTicket(addr), os.urandom(32))
    assert TransferTicket.parse(str(ticket)) == ticket
    for bad in ("endpointabc", "send", "send!!!", str(ticket)[:20], "sendaaaa"):
        with pytest.raises(DecodeError):
            TransferTicket.parse(bad)
    assert decode_request(encode_file_request(3, 1 << 40)) == (1, 3, 1 << 40)
    assert decode_request(b"\x00") == (0, 0, 0)
    for bad in (b"", b"\x02", b"\x00\x00", encode_file_request(1, 2)[:-1]):
        with pytest.raises(DecodeError):
            decode_request(bad)


# -- as a user ----------------------------------------------------------------------------


async def test_send_directory_and_receive(tmp_path: Path) -> None:
    src = tmp_path / "photos"
    write_random(src / "a.bin", 3_000_000)
    write_random(src / "nested" / "deeper" / "b.bin", 70_000)
    (src / "empty.txt").write_bytes(b"")
    out = tmp_path / "out"
    async with running("send", str(src), *LOOPBACK, "--json") as sender:
        ready = await json_event(sender.stdout, "ready")
        assert ready["files"] == 3 and ready["command"] == f"aioiroh receive {ready['ticket']}"
        rc, stdout, err = await run("receive", ready["ticket"], "--out", str(out), *LOOPBACK)
        assert rc == 0, err
        assert b"verified" in err and stdout == b""
        for rel in ("a.bin", "nested/deeper/b.bin", "empty.txt"):
            assert same(src / rel, out / "photos" / rel), rel
        assert not list(out.rglob("*" + PART_SUFFIX))
        # A second run finds everything in place and transfers nothing.
        rc, stdout, err = await run(
            "receive", ready["ticket"], "--out", str(out), *LOOPBACK, "--json"
        )
        assert rc == 0, err
        done = [json.loads(x) for x in stdout.splitlines() if b'"done"' in x][-1]
        assert done["files"] == 3 and done["resumed_bytes"] == 0
        assert b"file_done" not in stdout
        assert await interrupt(sender) == 130


async def first_bytes(part: Path, timeout: float = 30.0) -> None:
    """Wait until the receiver's partial file has data (no event to await: a bounded poll)."""
    async with asyncio.timeout(timeout):
        while not (part.exists() and part.stat().st_size > 0):
            await asyncio.sleep(0.001)


async def test_receive_interrupted_then_resumed(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    write_random(src, BIG)
    out = tmp_path / "out"
    async with running("send", str(src), *LOOPBACK, "--json") as sender:
        ticket = (await json_event(sender.stdout, "ready"))["ticket"]
        async with running(
            "receive", ticket, "--out", str(out), *LOOPBACK, "--json", stdin=PIPE
        ) as rx:
            # Freeze the sender as soon as the receiver has written something, so the receiver
            # is surely mid-file when it is interrupted (loopback is too fast to race).
            await first_bytes(out / ("big.bin" + PART_SUFFIX))
            sender.send_signal(signal.SIGSTOP)
            try:
                assert await interrupt(rx) == 130
            finally:
                sender.send_signal(signal.SIGCONT)
        part = out / ("big.bin" + PART_SUFFIX)
        have = part.stat().st_size
        assert 0 < have < BIG and not (out / "big.bin").exists()
        rc, stdout, err = await run("receive", ticket, "--out", str(out), *LOOPBACK, "--json")
        assert rc == 0, err
        done = json.loads(stdout.splitlines()[-1])
        assert done["event"] == "done" and done["resumed_bytes"] == have
        assert same(src, out / "big.bin") and not part.exists()


async def test_sender_restart_mid_transfer_is_retried(tmp_path: Path) -> None:
    """The connection drops (sender stops); the same sender comes back; receive completes."""
    src = tmp_path / "big.bin"
    write_random(src, BIG // 2)
    out = tmp_path / "out"
    key = tmp_path / "sender.key"
    bind = ("--bind", f"127.0.0.1:{free_udp_port()}", "--secret-key", str(key))
    async with running("send", str(src), *bind, "--json") as sender:
        ticket = (await json_event(sender.stdout, "ready"))["ticket"]
        rx = await spawn(
            "receive", ticket, "--out", str(out), *LOOPBACK, "--json", "--timeout", "3"
        )
        try:
            # Stop the sender as soon as the receiver has written something (loopback is too
            # fast to race): the Ctrl-C is queued before the sender may run again.
            await first_bytes(out / ("big.bin" + PART_SUFFIX))
            sender.send_signal(signal.SIGSTOP)
            sender.send_signal(signal.SIGINT)
            sender.send_signal(signal.SIGCONT)
            assert await asyncio.wait_for(sender.wait(), 15) == 130
            retry = await json_event(rx.stdout, "retry")
            assert retry["delay"] > 0
            async with running("send", str(src), *bind, "--json") as again:
                # Same key and IPv4 port: the old ticket still reaches it.
                back = TransferTicket.parse((await json_event(again.stdout, "ready"))["ticket"])
                assert back.endpoint.addr.id == TransferTicket.parse(ticket).endpoint.addr.id
                done = await json_event(rx.stdout, "done", timeout=60)
                assert await asyncio.wait_for(rx.wait(), 30) == 0
        finally:
            if rx.returncode is None:
                rx.kill()
                await rx.wait()
    assert done["bytes"] == BIG // 2
    assert same(src, out / "big.bin")


async def test_wrong_manifest_hash_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "f.txt"
    src.write_bytes(b"content")
    async with running("send", str(src), *LOOPBACK, "--json") as sender:
        ticket = TransferTicket.parse((await json_event(sender.stdout, "ready"))["ticket"])
        forged = TransferTicket(ticket.endpoint, bytes(32))
        rc, _out, err = await run("receive", str(forged), "--out", str(tmp_path / "o"), *LOOPBACK)
        assert rc == 1 and b"does not match" in err and b"Traceback" not in err
        assert not (tmp_path / "o" / "f.txt").exists()
    rc, _out, err = await run("receive", "sendnonsense")
    assert rc != 0 and b"bad ticket" in err


async def test_cancelled_append_waits_for_its_write(tmp_path: Path) -> None:
    """A receiver interrupted mid-write must not leave the write running behind its back:
    the cleanup would append the same bytes again (a BLAKE3 mismatch on resume)."""
    import io
    import threading

    from aioiroh.cli.transfer import _append_through

    started, release = threading.Event(), threading.Event()

    class SlowFile(io.FileIO):
        def write(self, b: object) -> int:  # type: ignore[override]
            started.set()
            release.wait(10)
            return super().write(b)  # type: ignore[arg-type]

    path = tmp_path / "part"
    with SlowFile(path, "ab") as fh:
        task = asyncio.create_task(_append_through(fh, b"x" * 100))
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=0.05)
        assert not done, "the cancelled append returned before its write landed"
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert path.read_bytes() == b"x" * 100
