"""An error inside one of hypercorn's connections ends that connection only. Under the trio
worker each connection runs in trio.serve_listeners' nursery, so an error hypercorn lets out
of one (a bug a client reaches) stopped the whole node (web/hypercorn_fixes.py, 5)."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext

from chatnode.web import hypercorn_fixes


async def app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("never reached: the connection fails before any request")


async def test_an_error_inside_a_connection_is_logged_and_ends_that_connection_only(
        caplog: pytest.LogCaptureFixture) -> None:
    hypercorn_fixes.install(1 << 20)
    # A stream hypercorn does not expect (it has no socket to name the peer by): TCPServer
    # raises AttributeError from inside its run, as a bug of its own would.
    stream, _ = trio.testing.memory_stream_pair()
    server = TCPServer(app, Config(), WorkerContext(None), {}, stream)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="chatnode.web"):
        async with trio.open_nursery() as nursery:  # as trio.serve_listeners runs handlers
            nursery.start_soon(server.run)
    (record,) = [r for r in caplog.records if r.name == "chatnode.web"]
    assert "the node goes on" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is AttributeError
