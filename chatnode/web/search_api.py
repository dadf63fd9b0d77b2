"""GET /api/v1/search: the messages a user may read that match a query, newest first.

The query is parsed into quoted FTS5 phrases by search_text (never passed through raw), and the
store only returns hits inside the caller's membership windows, so what a user finds is exactly
what history would show them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..protocol import MAX_SEQ, ChatError, ErrorCode, SearchHit, SearchPage
from ..search_text import QueryError, parse_query, snippet
from ..store import search as search_index
from .params import int_param
from .responses import json_response

if TYPE_CHECKING:
    from .rest import Api

SEARCH_MAX_LIMIT = 50
SEARCH_DEFAULT_LIMIT = 20


class SearchApi:
    def __init__(self, api: Api) -> None:
        self.api = api

    def routes(self, v1: str) -> list[Route]:
        return [Route(f"{v1}/search", self.search, methods=["GET"])]

    async def search(self, request: Request) -> Response:
        device = await self.api._device(request)
        params = request.query_params
        try:
            phrases = parse_query(params.get("q", ""))
        except QueryError as exc:
            raise ChatError(ErrorCode.INVALID, str(exc)) from None
        conversation_id = params.get("conversation_id") or None
        if conversation_id is not None:
            self.api.service.engine.conversation_for(device.user_id, conversation_id)
        limit = int_param(request, "limit", SEARCH_DEFAULT_LIMIT, 1, SEARCH_MAX_LIMIT)
        before = int_param(request, "before", None, 1, MAX_SEQ)
        rows = await self.api.service.store.read(
            search_index.search, device.user_id, phrases,
            conversation_id=conversation_id, before=before, limit=limit + 1)
        hits = []
        for row in rows[:limit]:
            text, marks = snippet(row.body, phrases)
            hits.append(SearchHit(row.conversation_id, row.seq, row.sender_id, row.ts,
                                  row.kind, text, marks))
        next_before = rows[limit - 1].cursor if len(rows) > limit else None
        return json_response(SearchPage(hits, next_before))
