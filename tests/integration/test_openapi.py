"""Schemathesis against a live node: every operation of /api/v1/openapi.json, with generated
requests, never answers 5xx and always answers as the document says (status, content type,
body schema, headers).

Path parameters and ids in bodies are sometimes real (the user's own group and direct
conversation, a stranger's conversation, real users, real media), so the success paths are
exercised too, not only 403 and 404. CHATNODE_OPENAPI_EXAMPLES raises the examples per
operation for a long local run (the default, 8, keeps the file under 20 s).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chatnode.web.openapi import OPERATIONS, Operation

from ..conftest import PASSWORD, Node, User, new_user

EXAMPLES = int(os.environ.get("CHATNODE_OPENAPI_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


@dataclass
class World:
    """Real things on the node, for generated requests to name."""

    url: str
    me: User
    ids: dict[str, list[str]] = field(default_factory=dict)

    def fresh_token(self) -> str:
        """A new device of `me`: logout revokes the token it is called with."""
        answer = httpx.post(f"{self.url}/api/v1/login",
                            json={"username": self.me.username, "password": PASSWORD})
        return str(answer.json()["token"])


async def _build_world(node: Node) -> World:
    alice, bob, carol, dave = [await new_user(node, p) for p in ("oa", "ob", "oc", "od")]
    try:
        group = await alice.rest.request("POST", "/api/v1/conversations", {
            "kind": "group", "members": [bob.user_id, carol.user_id], "name": "openapi"})
        direct = await alice.rest.direct(bob.user_id)
        strangers = await bob.rest.direct(carol.user_id)
        await alice.rest.request(
            "POST", f"/api/v1/conversations/{direct['conversation_id']}/messages",
            {"client_msg_id": "first", "body": "hello"})
        media = []
        for user in (alice, carol):
            async with httpx.AsyncClient(base_url=node.url) as http:
                uploaded = await http.post("/api/v1/media", content=b"\x89PNG bytes", headers={
                    "Authorization": f"Bearer {user.token}", "Content-Type": "image/png"})
            media.append(uploaded.json()["media_id"])
    finally:
        for user in (alice, bob, carol, dave):
            await user.rest.aclose()
    return World(node.url, alice, {
        # the group twice: its admin routes have the most to exercise
        "cid": [group["conversation_id"], group["conversation_id"], direct["conversation_id"],
                strangers["conversation_id"]],
        # never alice herself: she stays the group's admin, so its admin routes keep working
        "uid": [bob.user_id, carol.user_id, dave.user_id],
        "user_id": [alice.user_id, bob.user_id, dave.user_id],
        "username": [alice.username, bob.username],
        "media_id": media,
    })


@pytest.fixture(scope="module")
def world(node: Node) -> World:
    return trio.run(_build_world, node)


@pytest.fixture(scope="module")
def api_schema(node: Node, world: World) -> Any:
    schema = schemathesis.openapi.from_url(f"{node.url}/api/v1/openapi.json")
    schema.config.update(base_url=node.url,
                         headers={"Authorization": f"Bearer {world.me.token}"})
    return schema


def _real_ids(case: Any, world: World, data: st.DataObject) -> None:
    """Most of the time a path parameter or a body id names something real, and some sends
    are plain text messages, so the success paths run as well as the refusals."""
    def pick(name: str, generated: Any) -> Any:
        return data.draw(st.sampled_from([*world.ids[name], generated]))

    for name, value in (case.path_parameters or {}).items():
        if name in world.ids:
            case.path_parameters[name] = pick(name, value)
    body = case.body if isinstance(case.body, dict) else {}
    if "user_id" in body:
        body["user_id"] = pick("uid", body["user_id"])
    if "members" in body and data.draw(st.booleans()):
        body["members"] = data.draw(st.lists(st.sampled_from(world.ids["uid"]), max_size=3))
    if "client_msg_id" in body and data.draw(st.booleans()):
        for optional in ("media_id", "reply_to", "target"):
            body.pop(optional, None)
        body.update(kind="text", body=body.get("body", "").strip() or "hi")
    if body.get("kind") == "media":
        body["media_id"] = data.draw(st.sampled_from([world.ids["media_id"][0],
                                                      body.get("media_id")]))


def _negatable(op: Operation) -> bool:
    """Whether negative data exists for an operation: a JSON body or query parameters (path
    parameters are any non-empty string, so nothing there is out of bounds)."""
    return bool(op.query) or isinstance(op.body, type)


# Schemathesis' own pytest plumbing (`from_fixture`) does not run under pytest 9, so each
# operation is an ordinary parametrized test driving the operation's Hypothesis strategy.
# Declaration order matters a little: removing members comes after the routes that need them.
CASES = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    for (method, path), op in OPERATIONS.items()
    if mode is GenerationMode.POSITIVE or _negatable(op)
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_every_answer_matches_the_document(method: str, path: str, mode: GenerationMode,
                                           api_schema: Any, world: World) -> None:
    operation = api_schema[path][method]

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(mode), data=st.data())
    def check(case: Any, data: st.DataObject) -> None:
        if mode is GenerationMode.POSITIVE:
            _real_ids(case, world, data)
        if path == "/api/v1/logout":
            case.headers = {**(case.headers or {}),
                            "Authorization": f"Bearer {world.fresh_token()}"}
        case.call_and_validate(checks=CHECKS)

    check()


async def test_a_method_a_path_does_not_take_is_405_naming_those_it_does(node: Node) -> None:
    """Every documented path, asked with a method it lacks: 405, the error body, and an Allow
    header with exactly the documented methods (HEAD comes with GET)."""
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as http:
        document = (await http.get("/api/v1/openapi.json")).json()
        for path, operations in document["paths"].items():
            documented = {m.upper() for m in operations}
            allowed = documented | ({"HEAD"} if "GET" in documented else set())
            concrete = re.sub(r"\{\w+\}", "x", path)
            for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - documented):
                response = await http.request(method, concrete)
                assert response.status_code == 405, (method, path, response.text)
                assert response.json()["error"]["code"] == "invalid"
                assert set(response.headers["allow"].split(", ")) == allowed, (method, path)


def test_a_rate_limited_login_answers_as_the_document_says(own_node: Node) -> None:
    """429 with the error body and a Retry-After in whole seconds, checked by the same checks
    (the shared node runs with the limits off, so the generated requests never see one)."""
    own_node.env["CHATNODE_LIMITS_LOGIN_PER_MINUTE"] = "1"
    node = own_node.start()
    schema = schemathesis.openapi.from_url(f"{node.url}/api/v1/openapi.json")
    schema.config.update(base_url=node.url)
    case = schema["/api/v1/login"]["POST"].Case(
        body={"username": "nobody", "password": "not the password"},
        media_type="application/json")
    assert case.call_and_validate(checks=CHECKS).status_code == 401
    limited = case.call_and_validate(checks=CHECKS)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"][0]) >= 1
