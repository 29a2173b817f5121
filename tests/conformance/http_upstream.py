"""The HTTP/1.1 upstream of the conformance run: a small origin written on
raw sockets so that every byte it sends is known (chunk sizes, trailers,
framing headers, resets), as clawgate's gateway speaks HTTP/1.1.

    python3 http_upstream.py PORT LIFETIME_SECS

Routes (GET unless said; HEAD answers as GET would, without the body):
  /bytes/N          N bytes of pattern(N), Content-Length
  /chunked/N        the same, chunked (16 KiB chunks)
  /close/N          the same, close-delimited (no length, Connection: close)
  /status/204       204, no body
  /status/304       304 with an ETag, no body
  /trailers         a chunked body and two trailer fields (x-checksum = its sha256)
  /reset/N          Content-Length N, half the body, then a TCP reset
  /reset-chunked    a few chunks, then a TCP reset (no last chunk)
  POST /echo        the request body back (Content-Length), and what was received:
                    x-received-length, x-received-sha256, x-received-framing,
                    x-received-expect; a 100 Continue first when the request asked
  POST /refuse      413 without reading the body (an early refusal), then close
Every response carries x-body-sha256 (of the body a GET gets) where it has
a body. Loopback only; exits by itself after LIFETIME_SECS.
"""

import asyncio
import hashlib
import socket
import struct
import sys

HEAD_LIMIT = 64 * 1024
STEP = 30
IDLE = 900
_BLOCK = hashlib.sha256(b"clawgate conformance").digest() * 2048  # 64 KiB


def pattern(n: int) -> bytes:
    reps = n // len(_BLOCK) + 1
    return (_BLOCK * reps)[:n]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Request:
    def __init__(self, method, target, version, fields):
        self.method, self.target, self.version, self.fields = method, target, version, fields

    def get(self, name, default=None):
        for n, v in self.fields:
            if n == name:
                return v
        return default


async def read_head(reader):
    # A kept-alive connection may idle for long: closing it here would
    # race clawgate's pool reusing it (a POST written into a connection
    # the gateway just closed gets a 502), a flake, not a finding.
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE)
    if len(raw) > HEAD_LIMIT:
        raise ValueError("head too large")
    lines = raw.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ")
    fields = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            fields.append((name.strip().lower(), value.strip()))
    return Request(method, target, version, fields)


async def read_body(req, reader):
    te = req.get("transfer-encoding")
    if te is not None and te.lower() == "chunked":
        body = bytearray()
        while True:
            size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), STEP)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await asyncio.wait_for(reader.readuntil(b"\r\n"), STEP)) != b"\r\n":
                    pass  # request trailers: read and dropped
                return bytes(body), "chunked"
            body += await asyncio.wait_for(reader.readexactly(size), STEP)
            await asyncio.wait_for(reader.readexactly(2), STEP)
    n = int(req.get("content-length", "0"))
    return await asyncio.wait_for(reader.readexactly(n), STEP), "length"


def head(status, reason, fields):
    out = f"HTTP/1.1 {status} {reason}\r\n"
    for n, v in fields:
        out += f"{n}: {v}\r\n"
    return (out + "\r\n").encode()


def reset(writer):
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def serve_one(req, reader, writer) -> bool:
    """Answer one request; False when the connection is to end."""
    path = req.target.split("?")[0]
    is_head = req.method == "HEAD"
    keep = req.version == "HTTP/1.1" and (req.get("connection", "").lower() != "close")
    conn = [] if keep else [("connection", "close")]

    if req.method == "POST" and path == "/refuse":
        writer.write(head(413, "Content Too Large", [("content-length", "0"), ("connection", "close")]))
        await writer.drain()
        # Then close without reading the body, as a gateway that refuses
        # early may: a proxy that forwards the body anyway meets a reset.
        writer.write_eof()
        return False
    if req.method in ("POST", "PUT") and path == "/echo":
        expect = req.get("expect")
        if expect is not None and expect.lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        body, framing = await read_body(req, reader)
        fields = [
            ("content-type", "application/octet-stream"),
            ("content-length", str(len(body))),
            ("x-received-length", str(len(body))),
            ("x-received-sha256", sha(body)),
            ("x-received-framing", framing),
            ("x-received-expect", expect or "none"),
            ("x-body-sha256", sha(body)),
        ] + conn
        writer.write(head(200, "OK", fields) + body)
        await writer.drain()
        return keep
    if req.method not in ("GET", "HEAD"):
        await read_body(req, reader)
        writer.write(head(405, "Method Not Allowed", [("content-length", "0")] + conn))
        return keep

    parts = path.strip("/").split("/")
    kind, arg = parts[0], (parts[1] if len(parts) > 1 else "")
    if kind in ("bytes", "chunked", "close", "reset") and arg.isdigit():
        body = pattern(int(arg))
        fields = [("content-type", "application/octet-stream"), ("x-body-sha256", sha(body))]
        if kind == "bytes":
            writer.write(head(200, "OK", fields + [("content-length", str(len(body)))] + conn))
            if not is_head:
                writer.write(body)
        elif kind == "chunked":
            writer.write(head(200, "OK", fields + [("transfer-encoding", "chunked")] + conn))
            if not is_head:
                for i in range(0, len(body), 16384):
                    piece = body[i : i + 16384]
                    writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
        elif kind == "close":
            writer.write(head(200, "OK", fields + [("connection", "close")]))
            if not is_head:
                writer.write(body)
            await writer.drain()
            return False
        else:  # reset
            writer.write(head(200, "OK", fields + [("content-length", str(len(body)))]))
            if not is_head:
                writer.write(body[: len(body) // 2])
                await writer.drain()
                await asyncio.sleep(0.05)
                reset(writer)
                return False
        await writer.drain()
        return keep
    if kind == "reset-chunked":
        writer.write(head(200, "OK", [("transfer-encoding", "chunked")]))
        if not is_head:
            for _ in range(4):
                writer.write(b"400\r\n" + pattern(1024) + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            reset(writer)
            return False
        await writer.drain()
        return keep
    if kind == "status" and arg == "204":
        writer.write(head(204, "No Content", [("x-status", "204")] + conn))
        await writer.drain()
        return keep
    if kind == "status" and arg == "304":
        writer.write(head(304, "Not Modified", [("etag", '"conformance-1"'), ("x-status", "304")] + conn))
        await writer.drain()
        return keep
    if kind == "trailers":
        body = pattern(50000)
        writer.write(
            head(
                200,
                "OK",
                [("transfer-encoding", "chunked"), ("trailer", "x-checksum, x-trailer-two"),
                 ("x-body-sha256", sha(body))] + conn,
            )
        )
        if not is_head:
            for i in range(0, len(body), 7000):
                piece = body[i : i + 7000]
                writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            writer.write(f"0\r\nx-checksum: {sha(body)}\r\nx-trailer-two: two\r\n\r\n".encode())
        await writer.drain()
        return keep
    msg = b"not found\n"
    writer.write(head(404, "Not Found", [("content-length", str(len(msg)))] + conn) + (b"" if is_head else msg))
    await writer.drain()
    return keep


async def handle(reader, writer):
    try:
        for _ in range(10000):
            req = await read_head(reader)
            if not await serve_one(req, reader, writer):
                break
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main(port: int, lifetime: float) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=HEAD_LIMIT * 2)
    print(f"http_upstream: listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    async with server:
        await asyncio.sleep(lifetime)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
