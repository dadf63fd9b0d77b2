"""The transport floor: hypercorn's trio worker serving an ASGI app that only echoes WebSocket
frames, with no chat logic at all. `transport` loads it like `pairs` loads a node, so its CPU
per frame is what the stack costs before chatnode does anything: the floor under `pairs`.

A frame `burst:N` is answered with N message-shaped frames instead: the cost of outbound frames
alone, the floor under fan-out and catch-up.

`python -m chatnode.bench.echo` prints `listening on URL` and serves until it is stopped.
"""

from __future__ import annotations

from typing import Any

import hypercorn.trio
import trio
from hypercorn.config import Config

Scope = dict[str, Any]

# A text frame "burst:N" asks for N frames the size and shape of a chat `message`.
BURST = "burst:"
MESSAGE_FRAME = ('{"type":"message","conversation_id":"c_0123456789abcdef0123","seq":123456,'
                 '"sender_id":"u_0123456789abcdef","client_msg_id":"b123456","kind":"text",'
                 '"body":"1795000000000000000","ts":1795000000000}')


async def echo_app(scope: Scope, receive: Any, send: Any) -> None:
    """Accept every WebSocket and send each frame back as it came."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "websocket":
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            text = message.get("text")
            if text is not None and text.startswith(BURST):
                # Outbound frames only, as a fan-out or a catch-up sends them.
                for _ in range(int(text[len(BURST):])):
                    await send({"type": "websocket.send", "text": MESSAGE_FRAME})
            else:
                await send({"type": "websocket.send", "text": text,
                            "bytes": message.get("bytes")})
        else:
            return


async def main() -> None:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.loglevel = "WARNING"
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(hypercorn.trio.serve, echo_app, config)
        print(f"listening on {urls[0]}", flush=True)


if __name__ == "__main__":
    trio.run(main)
