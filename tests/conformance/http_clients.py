"""The clients of the HTTP conformance checks: raw HTTP/1.1 on a socket (every
byte of the response seen, framing included) and HTTP/2 by prior knowledge
with the `h2` library (frames seen: trailers, RST_STREAM, flow control).
Each returns an observation: a flat dict of what a client can tell.
"""

import hashlib
import socket
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

STEP = 30  # seconds any single read may wait


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class H1:
    """One HTTP/1.1 connection, read by hand."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=STEP)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError
        self.buf += data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise ValueError("line too long")
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def head(self, timeout: float = STEP):
        """(version, status, {name: value}) of the next head."""
        self.sock.settimeout(timeout)
        try:
            version, status, *_ = self._line().decode("latin-1").split(" ", 2)
            fields: dict[str, str] = {}
            while line := self._line():
                name, _, value = line.decode("latin-1").partition(":")
                name = name.strip().lower()
                fields[name] = f"{fields[name]}, {value.strip()}" if name in fields else value.strip()
            return version, int(status), fields
        finally:
            self.sock.settimeout(STEP)

    def response(self, method: str = "GET", head=None) -> dict:
        """The next final response: head, body, framing, trailers."""
        interim = []
        while True:
            version, status, fields = head or self.head()
            head = None
            if status >= 200 or status == 101:
                break
            interim.append(status)
        obs = {
            "version": version,
            "status": status,
            "interim": interim,
            "content-length": fields.get("content-length"),
            "transfer-encoding": fields.get("transfer-encoding"),
            "fields": fields,
            "trailers": {},
        }
        body = b""
        complete = True
        try:
            if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                pass
            elif (fields.get("transfer-encoding") or "").lower().endswith("chunked"):
                while True:
                    size = int(self._line().split(b";")[0].strip(), 16)
                    if size == 0:
                        while line := self._line():
                            n, _, v = line.decode("latin-1").partition(":")
                            obs["trailers"][n.strip().lower()] = v.strip()
                        break
                    body += self._take(size)
                    self._take(2)
            elif fields.get("content-length") is not None:
                body = self._take(int(fields["content-length"]))
            else:
                while True:
                    try:
                        self._fill()
                    except EOFError:
                        break
                body, self.buf = self.buf, b""
        except (EOFError, ConnectionError, socket.timeout):
            body += self.buf
            self.buf = b""
            complete = False
        obs.update({"body-length": len(body), "body-sha256": sha(body), "complete": complete})
        return obs


def request(method: str, path: str, fields=(), body: bytes | None = None, chunked: bool = False) -> bytes:
    out = f"{method} {path} HTTP/1.1\r\nhost: conformance.test\r\n"
    for n, v in fields:
        out += f"{n}: {v}\r\n"
    if body is not None and chunked:
        out += "transfer-encoding: chunked\r\n\r\n"
        raw = out.encode()
        for i in range(0, len(body), 100_000):
            piece = body[i : i + 100_000]
            raw += b"%x\r\n" % len(piece) + piece + b"\r\n"
        return raw + b"0\r\n\r\n"
    if body is not None:
        out += f"content-length: {len(body)}\r\n"
    return out.encode() + b"\r\n" + (body or b"")


class H2:
    """One h2c connection (prior knowledge) driven by hand."""

    def __init__(self, port: int, window: int = 65535, max_frame: int = 16384):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=STEP)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: max_frame,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
            },
        )
        self.conn.initiate_connection()
        self.flush()
        self.streams: dict[int, dict] = {}
        self.closed = False
        self.lazy_ack = False  # with True, DATA is acknowledged only by read()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()

    def _st(self, sid: int) -> dict:
        return self.streams.setdefault(
            sid, {"headers": None, "interim": [], "body": bytearray(), "trailers": {},
                  "ended": False, "reset": None, "unacked": 0}
        )

    def pump(self, timeout: float = STEP) -> None:
        """Read once and handle the events."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        finally:
            self.sock.settimeout(STEP)
        if not data:
            self.closed = True
            raise EOFError
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.InformationalResponseReceived):
                self._st(ev.stream_id)["interim"].append(int(dict(ev.headers)[":status"]))
            elif isinstance(ev, h2.events.ResponseReceived):
                self._st(ev.stream_id)["headers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                st = self._st(ev.stream_id)
                st["body"] += ev.data
                if self.lazy_ack:
                    st["unacked"] += ev.flow_controlled_length
                else:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                self._st(ev.stream_id)["trailers"] = dict(ev.headers)
            elif isinstance(ev, h2.events.StreamEnded):
                self._st(ev.stream_id)["ended"] = True
            elif isinstance(ev, h2.events.StreamReset):
                self._st(ev.stream_id)["reset"] = int(ev.error_code)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.closed = True
        self.flush()

    def wait(self, pred, budget: float = 60) -> None:
        end = time.monotonic() + budget
        while not pred():
            if time.monotonic() > end:
                raise TimeoutError("h2: nothing arrived in time")
            self.pump(max(0.05, end - time.monotonic()))

    def start(self, method: str, path: str, fields=(), end: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", "http"), (":path", path),
                   (":authority", "conformance.test")] + list(fields)
        self.conn.send_headers(sid, headers, end_stream=end)
        self.flush()
        self._st(sid)
        return sid

    def send_body(self, sid: int, body: bytes, budget: float = 120) -> None:
        """Send within the peer's windows, waiting for WINDOW_UPDATE as needed."""
        view = memoryview(body)
        end = time.monotonic() + budget
        while view:
            st = self.streams[sid]
            if st["reset"] is not None or st["ended"]:
                return  # the server is done with the stream (e.g. an early answer)
            window = self.conn.local_flow_control_window(sid)
            if window <= 0:
                if time.monotonic() > end:
                    raise TimeoutError("h2: flow-control window stayed closed")
                self.pump(5)
                continue
            n = min(window, self.conn.max_outbound_frame_size, len(view))
            self.conn.send_data(sid, bytes(view[:n]))
            view = view[n:]
            self.flush()
        self.conn.end_stream(sid)
        self.flush()

    def finish(self, sid: int, method: str = "GET") -> dict:
        st = self._st(sid)
        try:
            self.wait(lambda: st["ended"] or st["reset"] is not None or self.closed)
        except (EOFError, ConnectionError, TimeoutError):
            pass
        return observe_h2(st, method)


def observe_h2(st: dict, method: str) -> dict:
    h = st["headers"] or {}
    body = bytes(st["body"])
    return {
        "status": int(h.get(":status", 0)),
        "interim": st["interim"],
        "content-length": h.get("content-length"),
        "fields": {k: v for k, v in h.items() if not k.startswith(":")},
        "trailers": st["trailers"],
        "body-length": len(body),
        "body-sha256": sha(body),
        "complete": st["ended"] and st["reset"] is None,
        "reset": st["reset"],
    }
