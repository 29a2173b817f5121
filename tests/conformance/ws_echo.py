"""The WebSocket upstream of the conformance run: the `websockets` library's
echo server (permessage-deflate on, as the Autobahn 12.x/13.x cases need),
configured as websockets' own Autobahn compliance server is.

    python3 ws_echo.py PORT LIFETIME_SECS

Loopback only; exits by itself after LIFETIME_SECS.
"""

import asyncio
import os
import sys

# Case 9.3.1 sends a 4 MiB message in 64-byte fragments (65,536 frames);
# websockets refuses more than 4,096 fragments by default (its own guard
# against fragment floods), which would fail the case for a reason that
# has nothing to do with what travels over the wire.
os.environ.setdefault("WEBSOCKETS_MAX_FRAGMENTS", "200000")

from websockets.asyncio.server import serve  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402


async def echo(ws):
    try:
        async for msg in ws:
            await ws.send(msg)
    except ConnectionClosed:
        pass


async def main(port: int, lifetime: float) -> None:
    async with serve(
        echo,
        "127.0.0.1",
        port,
        server_header="conformance-echo",
        max_size=2**25,  # case 9's largest message is 16 MiB
        max_queue=1,
        # No keepalive pings: an unsolicited ping would be an extra event
        # in cases that count what they receive.
        ping_interval=None,
    ):
        print(f"ws_echo: listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        await asyncio.sleep(lifetime)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
