"""A request body must keep arriving: a client that drips it (slowloris) is refused with 408.

hypercorn's header timeout ends once the headers are in; after that nothing bounds how long a
body may take, so a client sending one byte every few seconds would hold its connection (and a
task) for hours. Each window of `window_s` must bring `window_bytes` or the end of the body:
a JSON body (never larger than that) arrives whole within the window, an upload at a floor
rate of window_bytes per window.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

import trio

from ..protocol import ChatError, ErrorCode

HTTP_REQUEST_TIMEOUT = 408


async def paced(chunks: AsyncIterable[bytes], window_s: float, window_bytes: int
                ) -> AsyncIterator[bytes]:
    iterator = aiter(chunks)
    deadline = trio.current_time() + window_s
    arrived = 0
    while True:
        chunk: bytes | None = None
        with trio.move_on_at(deadline) as window:
            chunk = await anext(iterator, None)
        if window.cancelled_caught:
            raise ChatError(ErrorCode.INVALID,
                            f"request body too slow: less than {window_bytes} bytes"
                            f" in {window_s:g} s", http_status=HTTP_REQUEST_TIMEOUT)
        if chunk is None:
            return
        arrived += len(chunk)
        if arrived >= window_bytes:
            arrived, deadline = 0, trio.current_time() + window_s
        yield chunk
