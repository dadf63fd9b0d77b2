"""The ASGI app: REST routes, the /ws endpoint, and the protocol's error body for every failure."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from ..accounts import Accounts
from ..hub import Hub
from ..media import MediaFiles
from ..protocol import ChatError, ErrorBody, ErrorCode, ErrorResponse
from ..service import ChatService
from .early_answer import DrainWhileAnswering
from .rest import Api, json_response
from .shell import AppShell
from .ws import WebSocketSession

log = logging.getLogger("chatnode.web")

_HTTP_CODES = {400: ErrorCode.INVALID, 401: ErrorCode.UNAUTHENTICATED, 403: ErrorCode.FORBIDDEN,
               404: ErrorCode.NOT_FOUND, 405: ErrorCode.INVALID, 413: ErrorCode.TOO_LARGE}


def error_response(code: str, message: str, status: int, headers: dict[str, str] | None = None
                   ) -> Response:
    response = json_response(ErrorResponse(ErrorBody(code, message)), status)
    if headers:
        response.headers.update(headers)
    return response


async def _chat_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ChatError)
    headers = None
    if exc.retry_after_ms is not None:
        headers = {"Retry-After": str(max(1, -(-exc.retry_after_ms // 1000)))}
    return error_response(exc.code, exc.message, exc.http_status, headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, ErrorCode.INTERNAL)
    message = "no such route" if exc.status_code == 404 else str(exc.detail)
    return error_response(code, message, exc.status_code)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(ErrorCode.INTERNAL, "internal error", 500)


class PlainAsgi:
    """Marks an ASGI callable for Starlette's router: a route whose endpoint is not a plain
    function is called as an ASGI app, with no per-frame wrapper of its own."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def build_app(service: ChatService, accounts: Accounts, hub: Hub, media: MediaFiles, *,
              frame_bytes: int, upload_bytes: int, outbox_frames: int,
              body_timeout_s: float, hello_timeout_s: float) -> ASGIApp:
    api = Api(service, accounts, hub, media, body_bytes=frame_bytes, upload_bytes=upload_bytes,
              body_timeout_s=body_timeout_s)

    async def websocket_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await WebSocketSession(scope, receive, send, service, accounts, frame_bytes,
                               outbox_frames, hello_timeout_s).run()

    return DrainWhileAnswering(Starlette(
        routes=[*api.routes(), WebSocketRoute("/ws", PlainAsgi(websocket_endpoint)),
                *AppShell().routes()],
        exception_handlers={
            ChatError: _chat_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    ))
