"""The OpenAPI document covers the REST API exactly, and its bodies are the protocol's."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from chatnode.protocol import HTTP_STATUS, json_schema
from chatnode.web.openapi import openapi_document
from chatnode.web.rest import Api


def _routes() -> set[tuple[str, str]]:
    # The handlers are never called: only the route table is read.
    api = Api(None, None, None, None, body_bytes=1, upload_bytes=1,  # type: ignore[arg-type]
              body_timeout_s=1)
    return {(method, route.path) for route in api.routes() if isinstance(route, Route)
            for method in route.methods or () if method != "HEAD"}


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}


def test_every_route_is_documented_and_nothing_else() -> None:
    document = openapi_document()
    assert _documented(document) == _routes()


def test_every_authenticated_route_names_the_bearer_scheme_and_401() -> None:
    document = openapi_document()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            if op["security"]:
                assert op["security"] == [{"bearer": []}]
                assert "401" in op["responses"], (method, path)


def test_bodies_are_the_protocols_own_schemas() -> None:
    """Every struct schema in the document is the one /api/v1/schema.json publishes."""
    components = openapi_document()["components"]["schemas"]
    published = json_schema()["$defs"]
    for name, schema in components.items():
        assert _without_refs(schema) == _without_refs(published[name]), name


def _without_refs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (v.rsplit("/", 1)[1] if k == "$ref" else _without_refs(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_without_refs(v) for v in value]
    return value


def test_each_error_status_allows_exactly_the_codes_the_protocol_maps_to_it() -> None:
    responses = openapi_document()["components"]["responses"]
    for code, status in HTTP_STATUS.items():
        if status == 500:
            assert "Error500" not in responses  # a 500 is a bug, never part of the contract
            continue
        enum = responses[f"Error{status}"]["content"]["application/json"]["schema"]["allOf"][1]
        assert code in enum["properties"]["error"]["properties"]["code"]["enum"]
    assert "Retry-After" in responses["Error429"]["headers"]
