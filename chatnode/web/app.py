"""The ASGI app: REST routes, the /ws endpoint, and the protocol's error body for every failure."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..accounts import Accounts
from ..admins import Admins
from ..hub import Hub
from ..logs import fields
from ..media import MediaFiles
from ..protocol import ChatError, ErrorBody, ErrorCode, ErrorResponse
from ..service import ChatService
from ..store import StoreUnavailable
from .access import AccessLog
from .early_answer import DrainWhileAnswering
from .responses import json_response
from .rest import Api
from .shell import AppShell
from .ws import WebSocketSession

log = logging.getLogger("chatnode.web")

# nginx's name for it; the access log shows it, the client is gone and never sees it.
CLIENT_CLOSED_REQUEST = 499

_HTTP_CODES = {400: ErrorCode.INVALID, 401: ErrorCode.UNAUTHENTICATED, 403: ErrorCode.FORBIDDEN,
               404: ErrorCode.NOT_FOUND, 405: ErrorCode.INVALID, 413: ErrorCode.TOO_LARGE}


def error_response(request: Request, code: str, message: str, status: int,
                   headers: dict[str, str] | None = None) -> Response:
    """The protocol's error body, counted in /metrics by code like the WebSocket's errors."""
    request.app.state.service.metrics.errors.labels(code).inc()
    response = json_response(ErrorResponse(ErrorBody(code, message)), status)
    if headers:
        response.headers.update(headers)
    return response


async def _chat_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ChatError)
    headers = None
    if exc.retry_after_ms is not None:
        headers = {"Retry-After": str(max(1, -(-exc.retry_after_ms // 1000)))}
    return error_response(request, exc.code, exc.message, exc.http_status, headers)


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    return error_response(request, ErrorCode.INTERNAL, "the store cannot be written right"
                          " now; nothing was stored, retry later", 503)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, ErrorCode.INTERNAL)
    message = "no such route" if exc.status_code == 404 else str(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(request, code, message, exc.status_code, headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path takes. Starlette's own Allow names only the first
    route that matched the path, and a path here is often several routes, one per method."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and \
                route.matches(request.scope)[0] is Match.PARTIAL:
            methods |= route.methods
    return sorted(methods)


async def _client_left(request: Request, exc: Exception) -> Response:
    """The client went away in the middle of its request body (a phone losing its network
    mid-upload): nothing to answer and nothing wrong with the node."""
    log.info("client left during its request", extra=fields(method=request.method,
                                                            path=request.url.path))
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # The path, never the query string or a header: the traceback is enough to find the bug.
    log.error("unhandled error", exc_info=exc,
              extra=fields(method=request.method, path=request.url.path))
    return error_response(request, ErrorCode.INTERNAL, "internal error", 500)


class ErrorsLoggedOnce:
    """Starlette re-raises an error after its handler has answered 500, so that the server can
    log it; `_internal_error` has logged it already, with the request, and hypercorn would log
    the same traceback a second time. An error raised before any answer still goes on up."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered = False

        async def send_and_note(message: Message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception:
            if not answered:
                raise


class PlainAsgi:
    """Marks an ASGI callable for Starlette's router: a route whose endpoint is not a plain
    function is called as an ASGI app, with no per-frame wrapper of its own."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def build_app(service: ChatService, accounts: Accounts, hub: Hub, media: MediaFiles, *,
              frame_bytes: int, upload_bytes: int, outbox_frames: int,
              body_timeout_s: float, hello_timeout_s: float,
              admins: Admins | None = None) -> ASGIApp:
    api = Api(service, accounts, hub, media, body_bytes=frame_bytes, upload_bytes=upload_bytes,
              body_timeout_s=body_timeout_s, admins=admins)

    async def websocket_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await WebSocketSession(scope, receive, send, service, accounts, frame_bytes,
                               outbox_frames, hello_timeout_s).run()

    app = Starlette(
        routes=[*api.routes(), WebSocketRoute("/ws", PlainAsgi(websocket_endpoint)),
                *AppShell().routes()],
        exception_handlers={
            ChatError: _chat_error,
            StoreUnavailable: _store_unavailable,
            ClientDisconnect: _client_left,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.service = service
    return AccessLog(ErrorsLoggedOnce(DrainWhileAnswering(app)))
