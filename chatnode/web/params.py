"""Integer query parameters, checked the same way on every route: a clear 400 `invalid` naming
the parameter and its range, never a 500."""

from __future__ import annotations

from starlette.requests import Request

from ..protocol import ChatError, ErrorCode


def int_param(request: Request, name: str, default: int | None, lowest: int, highest: int
              ) -> int | None:
    """The parameter as an integer in lowest..highest, or `default` when it is absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ChatError(ErrorCode.INVALID, f"{name} must be an integer") from None
    if not lowest <= value <= highest:
        raise ChatError(ErrorCode.INVALID, f"{name} must be {lowest} to {highest}")
    return value
