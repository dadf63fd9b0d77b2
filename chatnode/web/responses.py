"""The one way a route answers with JSON: the protocol's encoder, so every body is what the
protocol's structs say."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..protocol import encode_json


def json_response(value: Any, status: int = 200) -> Response:
    return Response(encode_json(value), status_code=status, media_type="application/json")
