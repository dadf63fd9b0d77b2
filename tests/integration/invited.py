"""A node whose registration is by invite, with an admin made by the CLI, and the REST steps
the invite and admin tests share."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatnode.client import RestClient

from ..conftest import PASSWORD, Node

ADMIN = "root"
INVITES = "/api/v1/invites"


def add_admin(data_dir: Path, username: str = ADMIN) -> None:
    """The first admin, made as an admin makes one: with the CLI."""
    subprocess.run([sys.executable, "-m", "chatnode", "user", "add", username, "--password",
                    PASSWORD, "--admin", "--data-dir", str(data_dir)],
                   check=True, capture_output=True)


def start_invite_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A node with registration by invite and an admin; for a module-scoped fixture."""
    data_dir = tmp_path_factory.mktemp("invites")
    add_admin(data_dir)
    node = Node(data_dir, env={"CHATNODE_REGISTRATION": "invite"}).start()
    yield node
    node.stop()


async def admin_of(node: Node) -> RestClient:
    rest = RestClient(node.url)
    await rest.login(ADMIN, PASSWORD)
    return rest


async def make_invite(by: RestClient, **options: Any) -> dict[str, Any]:
    created: dict[str, Any] = await by.request("POST", INVITES, options)
    return created


async def register(node: Node, username: str, invite: str | None = None) -> tuple[int, Any]:
    body = {"username": username, "password": PASSWORD}
    if invite is not None:
        body["invite"] = invite
    async with RestClient(node.url) as rest:
        return await rest.call("POST", "/api/v1/register", body)


async def invite_listed(admin: RestClient, invite_id: str) -> dict[str, Any]:
    (listed,) = [i for i in (await admin.request("GET", INVITES))["invites"]
                 if i["invite_id"] == invite_id]
    return listed


async def can_log_in(node: Node, username: str) -> bool:
    async with RestClient(node.url) as rest:
        status, _ = await rest.call("POST", "/api/v1/login",
                                    {"username": username, "password": PASSWORD})
    return status == 200


def name() -> str:
    return f"inv{uuid.uuid4().hex[:10]}"
