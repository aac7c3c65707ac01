"""``aioiroh send FILE|DIR`` / ``aioiroh receive TICKET``: verified, resumable file transfer.

Our own small protocol on ALPN ``aioiroh/send/0`` (no Rust counterpart; sendme's iroh-blobs is
a much larger format). One request per bidirectional stream; the client writes the request and
finishes, the server answers and finishes::

    00                                  GET_MANIFEST -> the manifest bytes
    01 <u32 index> <u64 offset>         GET_FILE     -> file[index] bytes from offset to its end
                                        (big-endian; a bad index or offset resets the stream)

The manifest is UTF-8 JSON ``{"version": 1, "files": [{"path", "size", "blake3"}]}`` with
``/``-separated relative paths. The ticket (``send`` + base32 of 32-byte BLAKE3 of the manifest
and an endpoint ticket's bytes) pins the manifest, and the manifest pins every file's BLAKE3,
so the receiver trusts nothing the sender says beyond the ticket.

Resuming: bytes land in ``<path>.aioiroh-part`` and the next request starts at its length, so
a dropped connection (retried with backoff) or a second ``receive`` run picks up where it was.
A file is renamed into place only after its hash matches.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import blake3
import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..base._z32 import b32_decode, b32_encode
from ..base.ticket import EndpointTicket
from ..endpoint.connection import Connection
from ..endpoint.streams import RecvStream, SendStream
from ..errors import DecodeError, IrohError
from ._common import emit, hard_nat_option, json_option, key_option, note, relay_option
from .pipe import CHUNK, bind_endpoint, bind_option, run_main

ALPN: Final = b"aioiroh/send/0"
TICKET_PREFIX: Final = "send"
PART_SUFFIX: Final = ".aioiroh-part"
OP_MANIFEST: Final = 0
OP_FILE: Final = 1
_FILE_REQ: Final = struct.Struct(">BIQ")
# Stream reset codes for requests we refuse.
ERR_BAD_REQUEST: Final = 1
ERR_IO: Final = 2
# Bounds on what a receiver accepts from a sender, and a sender from receivers.
MAX_MANIFEST_BYTES: Final = 16 * 1024 * 1024
MAX_FILES: Final = 100_000
MAX_PATH_CHARS: Final = 4096
MAX_REQUEST_BYTES: Final = 64
MAX_CONNECTIONS: Final = 64
MAX_INFLIGHT_REQUESTS: Final = 256
REQUEST_TIMEOUT: Final = 30.0
# Receiver writes to disk in batches this large (stream reads come in packet-sized pieces).
WRITE_BATCH: Final = 1024 * 1024
# Receiver reconnects this many times without progress before giving up; delays double.
MAX_RETRIES: Final = 8
RETRY_BASE_DELAY: Final = 0.25
RETRY_MAX_DELAY: Final = 5.0
# --json progress events at most this often.
PROGRESS_INTERVAL: Final = 0.25


# -- manifest and ticket (pure) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file in a transfer."""

    path: str
    """Relative ``/``-separated path; never absolute, never with ``..``."""
    size: int
    blake3: bytes
    """32-byte BLAKE3 of the whole file."""


def encode_manifest(files: list[FileEntry]) -> bytes:
    body = {
        "version": 1,
        "files": [{"path": f.path, "size": f.size, "blake3": f.blake3.hex()} for f in files],
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def check_relative_path(path: object) -> str:
    """A manifest path must stay inside the output directory."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH_CHARS:
        raise DecodeError("bad path in manifest")
    if "\\" in path or "\x00" in path or path.startswith("/"):
        raise DecodeError(f"unsafe path in manifest: {path!r}")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise DecodeError(f"unsafe path in manifest: {path!r}")
    if path.endswith(PART_SUFFIX):
        raise DecodeError(f"reserved name in manifest: {path!r}")
    return path


def decode_manifest(data: bytes) -> list[FileEntry]:
    """Parse and validate a manifest; raises :class:`DecodeError` on anything off."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise DecodeError("manifest too large")
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DecodeError("manifest is not JSON") from None
    if not isinstance(body, dict) or body.get("version") != 1:
        raise DecodeError("unsupported manifest version")
    raw = body.get("files")
    if not isinstance(raw, list) or len(raw) > MAX_FILES:
        raise DecodeError("bad file list in manifest")
    files: list[FileEntry] = []
    seen: set[str] = set()
    for item in raw:
        if not isinstance(item, dict):
            raise DecodeError("bad file entry in manifest")
        path = check_relative_path(item.get("path"))
        size, digest = item.get("size"), item.get("blake3")
        if type(size) is not int or not 0 <= size < 1 << 62:
            raise DecodeError("bad file size in manifest")
        if not isinstance(digest, str) or len(digest) != 64:
            raise DecodeError("bad hash in manifest")
        try:
            raw_hash = bytes.fromhex(digest)
        except ValueError:
            raise DecodeError("bad hash in manifest") from None
        if path in seen:
            raise DecodeError(f"duplicate path in manifest: {path!r}")
        seen.add(path)
        files.append(FileEntry(path, size, raw_hash))
    return files


@dataclass(frozen=True, slots=True)
class TransferTicket:
    """What ``receive`` needs: the sender's address and the manifest's BLAKE3."""

    endpoint: EndpointTicket
    manifest_hash: bytes

    def __str__(self) -> str:
        return TICKET_PREFIX + b32_encode(self.manifest_hash + self.endpoint.to_bytes())

    @classmethod
    def parse(cls, text: str) -> TransferTicket:
        text = text.strip()
        if not text.startswith(TICKET_PREFIX) or len(text) > 64 * 1024:
            raise DecodeError("not a send ticket")
        try:
            raw = b32_decode(text[len(TICKET_PREFIX) :])
        except (ValueError, IrohError):
            raise DecodeError("send ticket is not base32") from None
        if len(raw) <= 32:
            raise DecodeError("send ticket too short")
        return cls(EndpointTicket.from_bytes(raw[32:]), raw[:32])


def encode_file_request(index: int, offset: int) -> bytes:
    return _FILE_REQ.pack(OP_FILE, index, offset)


def decode_request(data: bytes) -> tuple[int, int, int]:
    """``(op, index, offset)``; raises :class:`DecodeError` for anything else."""
    if data == bytes([OP_MANIFEST]):
        return OP_MANIFEST, 0, 0
    if len(data) == _FILE_REQ.size and data[0] == OP_FILE:
        return _FILE_REQ.unpack(data)
    raise DecodeError("bad request")


# -- file helpers (run in threads) --------------------------------------------------------


def hash_file(path: Path) -> bytes:
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    if path.stat().st_size:
        h.update_mmap(str(path))
    return h.digest()


def collect(root: Path) -> list[tuple[Path, str]]:
    """Regular files under ``root`` (or ``root`` itself), with their manifest paths."""
    if root.is_file():
        return [(root, root.name)]
    if not root.is_dir():
        raise click.ClickException(f"{root} is not a file or directory")
    out: list[tuple[Path, str]] = []
    base = root.resolve().name or "root"
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if full.is_file() and not full.is_symlink():
                rel = full.relative_to(root).as_posix()
                out.append((full, f"{base}/{rel}"))
    if len(out) > MAX_FILES:
        raise click.ClickException(f"too many files (limit {MAX_FILES})")
    return out


def _read_at(fh: IO[bytes], n: int) -> bytes:
    return fh.read(n)


# -- send ---------------------------------------------------------------------------------


class _Server:
    def __init__(self, paths: list[Path], files: list[FileEntry], manifest: bytes, as_json: bool):
        self.paths = paths
        self.files = files
        self.manifest = manifest
        self.as_json = as_json
        self.inflight = 0
        self.refused = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def connection(self, conn: Connection) -> None:
        peer = conn.remote_id
        if self.as_json:
            emit(True, {"event": "receiver_connected", "remote_id": str(peer)}, "")
        else:
            note(f"receiver {peer.fmt_short()} connected")
        while True:
            try:
                send, recv = await conn.accept_bi()
            except IrohError:
                return
            if self.inflight >= MAX_INFLIGHT_REQUESTS:
                self.refused += 1
                send.reset(ERR_BAD_REQUEST)
                recv.stop(ERR_BAD_REQUEST)
                continue
            self.spawn(self.request(send, recv))

    async def request(self, send: SendStream, recv: RecvStream) -> None:
        self.inflight += 1
        try:
            data = await asyncio.wait_for(recv.read_to_end(MAX_REQUEST_BYTES), REQUEST_TIMEOUT)
            op, index, offset = decode_request(data)
            if op == OP_MANIFEST:
                await send.write_all(self.manifest)
                await send.finish()
                return
            if index >= len(self.files) or offset > self.files[index].size:
                send.reset(ERR_BAD_REQUEST)
                return
            await self.send_file(send, index, offset)
        except (IrohError, TimeoutError):
            send.reset(ERR_BAD_REQUEST)
        except OSError:
            send.reset(ERR_IO)
        finally:
            self.inflight -= 1

    async def send_file(self, send: SendStream, index: int, offset: int) -> None:
        left = self.files[index].size - offset
        with self.paths[index].open("rb") as fh:
            fh.seek(offset)
            while left > 0:
                chunk = await asyncio.to_thread(_read_at, fh, min(CHUNK * 4, left))
                if not chunk:
                    break  # the file shrank; the receiver's hash check will say so
                await send.write_all(chunk)
                left -= len(chunk)
        await send.finish()

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _send(
    root: Path,
    key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    as_json: bool,
    *,
    hard_nat: bool,
) -> int:
    found = collect(root)
    hashes = await asyncio.gather(*(asyncio.to_thread(hash_file, p) for p, _ in found))
    files = [FileEntry(name, p.stat().st_size, h) for (p, name), h in zip(found, hashes)]
    manifest = encode_manifest(files)
    ep = await bind_endpoint(key_file, [ALPN], bind, relays, hard_nat=hard_nat)
    server = _Server([p for p, _ in found], files, manifest, as_json)
    conns: set[asyncio.Task[None]] = set()
    try:
        ticket = str(TransferTicket(ep.ticket(), blake3.blake3(manifest).digest()))
        total = sum(f.size for f in files)
        if as_json:
            emit(
                True,
                {
                    "event": "ready",
                    "ticket": ticket,
                    "files": len(files),
                    "bytes": total,
                    "endpoint_id": str(ep.id),
                    "command": f"aioiroh receive {ticket}",
                },
                "",
            )
        else:
            note(f"sending {len(files)} file(s), {total} bytes. On the other side run:")
            note(f"aioiroh receive {ticket}")
        while True:
            conn = await ep.accept()
            if len(conns) >= MAX_CONNECTIONS:
                conn.close(1, b"too many receivers")
                continue
            task = asyncio.create_task(server.connection(conn))
            conns.add(task)
            task.add_done_callback(conns.discard)
    finally:
        for task in conns:
            task.cancel()
        await asyncio.gather(*conns, return_exceptions=True)
        await server.close()
        await ep.close()


# -- receive ------------------------------------------------------------------------------


class _Fatal(Exception):
    """A failure that retrying cannot fix (bad manifest, hash mismatch, disk)."""


class _Reporter:
    """The progress bar for people, or throttled JSON progress lines for scripts."""

    def __init__(self, as_json: bool, quiet: bool, total: int) -> None:
        self.as_json = as_json
        self.total = total
        self.done = 0
        self._last = 0.0
        self._start = time.monotonic()
        self._progress: Progress | None = None
        if not as_json and not quiet:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._progress.start()
            self._task = self._progress.add_task("receiving", total=total)

    def advance(self, n: int, *, force: bool = False) -> None:
        self.done += n
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done)
        elif self.as_json:
            now = time.monotonic()
            if force or now - self._last >= PROGRESS_INTERVAL:
                self._last = now
                rate = self.done / max(now - self._start, 1e-6)
                emit(
                    True,
                    {"event": "progress", "bytes": self.done, "total": self.total, "rate": rate},
                    "",
                )

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()


async def _fetch_manifest(conn: Connection, want: bytes) -> list[FileEntry]:
    send, recv = await conn.open_bi()
    await send.write_all(bytes([OP_MANIFEST]))
    await send.finish()
    data = await recv.read_to_end(MAX_MANIFEST_BYTES)
    if blake3.blake3(data).digest() != want:
        raise _Fatal("manifest does not match the ticket's hash")
    try:
        return decode_manifest(data)
    except DecodeError as exc:
        raise _Fatal(str(exc)) from None


def _append(fh: IO[bytes], data: bytes) -> None:
    fh.write(data)


async def _append_through(fh: IO[bytes], data: bytes) -> None:
    """Append ``data`` in a thread and always wait for the write to land.

    Cancelling a plain ``await to_thread(...)`` leaves the write running in its thread: the
    cleanup below could then write the same bytes again, or race it on the same file.
    """
    write = asyncio.ensure_future(asyncio.to_thread(_append, fh, data))
    try:
        await asyncio.shield(write)
    except asyncio.CancelledError:
        await write
        raise


async def _fetch_file(
    conn: Connection, index: int, entry: FileEntry, part: Path, report: _Reporter
) -> None:
    offset = part.stat().st_size if part.exists() else 0
    if offset >= entry.size:
        return
    send, recv = await conn.open_bi()
    await send.write_all(encode_file_request(index, offset))
    await send.finish()
    with part.open("ab") as fh:
        batch = bytearray()
        got = offset
        try:
            while True:
                chunk = await recv.read(CHUNK)
                if not chunk:
                    break
                if got + len(batch) + len(chunk) > entry.size:
                    raise _Fatal(f"{entry.path}: sender sent more than {entry.size} bytes")
                batch += chunk
                if len(batch) >= WRITE_BATCH:
                    data = bytes(batch)
                    batch.clear()  # from here these bytes belong to the write, not the batch
                    await _append_through(fh, data)
                    got += len(data)
                    report.advance(len(data))
        finally:
            # Keep every byte that arrived, even when the connection dies mid-file.
            if batch:
                data = bytes(batch)
                batch.clear()
                await _append_through(fh, data)
                report.advance(len(data))
                got += len(data)
    if got != entry.size:
        raise _Fatal(f"{entry.path}: sender ended after {got} of {entry.size} bytes")


def _finish_file(entry: FileEntry, part: Path, dest: Path) -> None:
    if part.exists():
        if hash_file(part) != entry.blake3:
            part.unlink()
            raise _Fatal(f"{entry.path}: BLAKE3 mismatch (partial data discarded)")
        part.replace(dest)
    elif entry.size == 0:
        if hash_file_bytes(b"") != entry.blake3:
            raise _Fatal(f"{entry.path}: BLAKE3 mismatch")
        dest.write_bytes(b"")


def hash_file_bytes(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def _already_there(entry: FileEntry, dest: Path) -> bool:
    return dest.is_file() and dest.stat().st_size == entry.size and hash_file(dest) == entry.blake3


async def _receive(
    text: str,
    out: Path,
    key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    timeout: float,
    retries: int,
    quiet: bool,
    as_json: bool,
    *,
    hard_nat: bool,
) -> int:
    try:
        ticket = TransferTicket.parse(text)
    except IrohError as exc:
        raise click.ClickException(f"bad ticket: {exc}") from None
    ep = await bind_endpoint(key_file, [], bind, relays, hard_nat=hard_nat)
    report: _Reporter | None = None
    files: list[FileEntry] | None = None
    done: set[int] = set()
    resumed = 0
    start = time.monotonic()
    failures = 0
    try:
        while True:
            conn: Connection | None = None
            progress_mark = report.done if report is not None else -1
            try:
                conn = await ep.connect(ticket.endpoint, ALPN, timeout=timeout)
                if files is None:
                    files = await _fetch_manifest(conn, ticket.manifest_hash)
                    report = _Reporter(as_json, quiet, sum(f.size for f in files))
                    for i, entry in enumerate(files):
                        dest = out / entry.path
                        part = dest.with_name(dest.name + PART_SUFFIX)
                        if await asyncio.to_thread(_already_there, entry, dest):
                            done.add(i)
                            report.advance(entry.size)
                        elif part.exists():
                            have = min(part.stat().st_size, entry.size)
                            resumed += have
                            report.advance(have)
                assert report is not None
                for i, entry in enumerate(files):
                    if i in done:
                        continue
                    dest = out / entry.path
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    part = dest.with_name(dest.name + PART_SUFFIX)
                    await _fetch_file(conn, i, entry, part, report)
                    await asyncio.to_thread(_finish_file, entry, part, dest)
                    done.add(i)
                    if as_json:
                        emit(
                            True,
                            {"event": "file_done", "path": entry.path, "bytes": entry.size},
                            "",
                        )
                conn.close(0, b"done")
                break
            except IrohError as exc:
                if conn is not None:
                    conn.close(1, b"retrying")
                if report is not None and report.done > progress_mark:
                    failures = 0  # progress was made: the budget starts again
                failures += 1
                if failures > retries:
                    raise click.ClickException(
                        f"giving up after {retries} retries: {exc}"
                    ) from None
                delay = min(RETRY_BASE_DELAY * 2 ** (failures - 1), RETRY_MAX_DELAY)
                if as_json:
                    emit(True, {"event": "retry", "error": str(exc), "delay": delay}, "")
                else:
                    note(f"connection problem ({exc}); retrying in {delay:.1f}s")
                await asyncio.sleep(delay)
        assert files is not None and report is not None
        report.advance(0, force=True)
        report.stop()
        secs = time.monotonic() - start
        total = sum(f.size for f in files)
        if as_json:
            result = {
                "event": "done",
                "files": len(files),
                "bytes": total,
                "resumed_bytes": resumed,
                "seconds": secs,
                "out": str(out),
            }
            emit(True, result, "")
        else:
            extra = f" (resumed {resumed} bytes)" if resumed else ""
            note(f"received {len(files)} file(s), {total} bytes in {secs:.1f}s{extra}; verified")
        return 0
    except _Fatal as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"disk error: {exc}") from None
    finally:
        if report is not None:
            report.stop()
        await ep.close()


@click.command("send")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@key_option
@bind_option
@relay_option
@hard_nat_option
@json_option
def send_command(
    path: Path,
    secret_key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    hard_nat: bool,
    as_json: bool,
) -> None:
    """Offer FILE or DIR; prints the `aioiroh receive` command line. Ctrl-C to stop."""
    run_main(_send(path, secret_key_file, bind, relays, as_json, hard_nat=hard_nat))


@click.command("receive")
@click.argument("ticket")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory to save into.",
)
@key_option
@bind_option
@relay_option
@hard_nat_option
@click.option("--timeout", default=10.0, show_default=True, help="Connect timeout in seconds.")
@click.option(
    "--retries", default=MAX_RETRIES, show_default=True, help="Reconnects without progress."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@json_option
def receive_command(
    ticket: str,
    out: Path,
    secret_key_file: Path | None,
    bind: str,
    relays: tuple[str, ...],
    hard_nat: bool,
    timeout: float,
    retries: int,
    quiet: bool,
    as_json: bool,
) -> None:
    """Fetch what TICKET offers into --out, verifying BLAKE3; rerun to resume."""
    run_main(
        _receive(
            ticket,
            out,
            secret_key_file,
            bind,
            relays,
            timeout,
            retries,
            quiet,
            as_json,
            hard_nat=hard_nat,
        )
    )


commands: list[click.Command] = [send_command, receive_command]
