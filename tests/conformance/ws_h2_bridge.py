"""Carry an HTTP/1.1 WebSocket client's connections as RFC 8441 streams.

kosoku (the Autobahn runner) speaks WebSocket over HTTP/1.1 only. This
bridge accepts its upgrade, opens the same WebSocket through clawgate as an
HTTP/2 extended CONNECT stream (h2c by prior knowledge, one connection per
WebSocket, the member's bearer token added), answers kosoku's handshake
itself once clawgate's 200 arrives (Sec-WebSocket-Accept from kosoku's key,
Sec-WebSocket-Extensions as the stream's 200 carried it), and then copies
bytes: kosoku's into DATA frames (within the stream's flow-control window),
the stream's DATA back to kosoku, END_STREAM as a half-close either way,
RST_STREAM as a dropped TCP connection. The WebSocket frames themselves are
never parsed or changed here, so the Autobahn verdicts judge what clawgate's
h2 side carried.

    python3 ws_h2_bridge.py LISTEN_PORT CLAWGATE_PORT TOKEN LIFETIME_SECS
"""

import asyncio
import base64
import hashlib
import sys

import h2.config
import h2.connection
import h2.events

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HEAD_LIMIT = 64 * 1024
STEP = 30  # seconds any single wait may take before the bridge gives up


def accept_for(key: bytes) -> str:
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()


async def read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP)
    if len(raw) > HEAD_LIMIT:
        raise ValueError("head too large")
    lines = raw.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    if method != "GET":
        raise ValueError("not a GET")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
    return target, fields


class Stream:
    """One WebSocket as one stream of its own h2c connection."""

    def __init__(self, target_port: int, token: str):
        self.target_port = target_port
        self.token = token
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.sid = 1
        self.window_open = asyncio.Event()
        self.settings_seen = asyncio.Event()
        self.response: asyncio.Future = asyncio.get_running_loop().create_future()
        self.inbound: asyncio.Queue = asyncio.Queue()  # bytes, or None at the end

    async def open(self, target: str, fields: dict[str, str]) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.conn.initiate_connection()
        self.flush()
        self.pump_task = asyncio.create_task(self.pump())
        # Extended CONNECT may only be used once the server's SETTINGS
        # enabled it (RFC 8441 §3).
        await asyncio.wait_for(self.settings_seen.wait(), STEP)
        headers = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "http"),
            (":path", target),
            (":authority", f"127.0.0.1:{self.target_port}"),
            ("authorization", f"Bearer {self.token}"),
            ("sec-websocket-version", fields.get("sec-websocket-version", "13")),
        ]
        for name in ("sec-websocket-protocol", "sec-websocket-extensions"):
            if name in fields:
                headers.append((name, fields[name]))
        self.conn.send_headers(self.sid, headers)
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    async def pump(self) -> None:
        """Read clawgate's frames; hand DATA to the kosoku side."""
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                for ev in self.conn.receive_data(data):
                    self.on_event(ev)
                self.flush()
                await self.writer.drain()
        except Exception:  # noqa: BLE001 - the connection is gone either way
            pass
        finally:
            if not self.response.done():
                self.response.set_exception(ConnectionError("h2 connection ended"))
            self.inbound.put_nowait(None)
            self.window_open.set()

    def on_event(self, ev) -> None:
        if isinstance(ev, h2.events.RemoteSettingsChanged):
            self.settings_seen.set()
        elif isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == self.sid:
            if not self.response.done():
                self.response.set_result(dict(ev.headers))
        elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == self.sid:
            self.inbound.put_nowait((ev.data, ev.flow_controlled_length))
        elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == self.sid:
            self.inbound.put_nowait(None)
        elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == self.sid:
            self.inbound.put_nowait("reset")
        elif isinstance(ev, h2.events.WindowUpdated):
            self.window_open.set()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.inbound.put_nowait("reset")

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            window = self.conn.local_flow_control_window(self.sid)
            if window <= 0:
                self.window_open.clear()
                await asyncio.wait_for(self.window_open.wait(), STEP)
                if self.reader.at_eof():
                    raise ConnectionError("h2 connection ended")
                continue
            n = min(window, self.conn.max_outbound_frame_size, len(view))
            self.conn.send_data(self.sid, bytes(view[:n]))
            view = view[n:]
            self.flush()
            await self.writer.drain()

    def end(self) -> None:
        try:
            self.conn.end_stream(self.sid)
            self.flush()
        except Exception:  # noqa: BLE001 - stream already closed or reset
            pass

    def ack(self, n: int) -> None:
        self.conn.acknowledge_received_data(n, self.sid)
        self.flush()

    def close(self) -> None:
        self.pump_task.cancel()
        self.writer.close()


async def client_to_stream(reader, stream: Stream) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await stream.send(data)
        stream.end()
    except Exception:  # noqa: BLE001
        pass


async def stream_to_client(writer, stream: Stream) -> None:
    while True:
        item = await stream.inbound.get()
        if item is None:  # END_STREAM: a half-close, as a FIN would be
            if writer.can_write_eof():
                writer.write_eof()
            return
        if item == "reset":  # RST_STREAM: drop the TCP connection
            writer.transport.abort()
            return
        data, flow = item
        writer.write(data)
        await writer.drain()
        stream.ack(flow)


async def handle(reader, writer, target_port: int, token: str) -> None:
    stream = None
    try:
        target, fields = await read_head(reader)
        key = fields.get("sec-websocket-key", "").encode()
        stream = Stream(target_port, token)
        await stream.open(target, fields)
        headers = await asyncio.wait_for(stream.response, STEP)
        status = headers.get(":status")
        if status != "200":
            writer.write(
                f"HTTP/1.1 {status} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            return
        head = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_for(key)}\r\n"
        )
        for name in ("sec-websocket-extensions", "sec-websocket-protocol"):
            if name in headers:
                head += f"{name}: {headers[name]}\r\n"
        writer.write((head + "\r\n").encode())
        await writer.drain()
        up = asyncio.create_task(client_to_stream(reader, stream))
        down = asyncio.create_task(stream_to_client(writer, stream))
        await down
        # Once the stream's side is over, give kosoku's side a moment to
        # finish (its close frame and FIN), then stop.
        try:
            await asyncio.wait_for(up, STEP)
        except asyncio.TimeoutError:
            up.cancel()
    except Exception as err:  # noqa: BLE001
        print(f"ws_h2_bridge: {type(err).__name__}: {err}", file=sys.stderr)
    finally:
        if stream is not None and hasattr(stream, "writer"):
            stream.close()
        writer.close()


async def main(port: int, target_port: int, token: str, lifetime: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, target_port, token), "127.0.0.1", port
    )
    print(f"ws_h2_bridge: 127.0.0.1:{port} -> h2c 127.0.0.1:{target_port}", file=sys.stderr, flush=True)
    async with server:
        await asyncio.sleep(lifetime)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])))
