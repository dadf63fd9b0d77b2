"""`chatnode invite create / list / revoke`, through the real command, beside a running node on
the same data directory (its default registration: invites)."""

from __future__ import annotations

from chatnode.client import RestClient

from ..conftest import PASSWORD, Node
from .test_lifecycle import chatnode, clean_env, err, out


def invite_node(own_node: Node) -> Node:
    own_node.env.pop("CHATNODE_REGISTRATION")  # the default: invite
    return own_node.start()


async def register(node: Node, username: str, token: str) -> int:
    async with RestClient(node.url) as rest:
        status, _ = await rest.call("POST", "/api/v1/register", {
            "username": username, "password": PASSWORD, "invite": token})
    return status


async def test_invite_create_prints_a_link_that_registers_someone(own_node: Node) -> None:
    node = invite_node(own_node)
    data = str(node.data_dir)
    created = await chatnode("invite", "create", "--data-dir", data)
    assert created.returncode == 0, err(created)
    summary, link = out(created).splitlines()
    assert summary.startswith("created invite i_") and "1 use, expires" in summary
    # No public_url: the config's host and port, and a note saying so.
    assert link.startswith("http://127.0.0.1:8420/#invite=")
    assert "no public_url is configured" in err(created)
    assert await register(node, "ida", link.split("#invite=")[1]) == 201
    assert await register(node, "ian", link.split("#invite=")[1]) == 403  # single use

    public = await chatnode("invite", "create", "--data-dir", data, env=clean_env({
        "CHATNODE_PUBLIC_URL": "https://chat.example.org"}))
    assert public.returncode == 0, err(public)
    assert out(public).splitlines()[1].startswith("https://chat.example.org/#invite=")
    assert err(public) == ""


async def test_invite_list_never_shows_tokens_and_revoke_ends_an_invite(own_node: Node) -> None:
    node = invite_node(own_node)
    data = str(node.data_dir)
    once = await chatnode("invite", "create", "--data-dir", data)
    team = await chatnode("invite", "create", "--uses", "3", "--expires", "12h", "--admin",
                          "--data-dir", data)
    assert "created admin invite" in out(team) and "3 uses" in out(team)
    once_id = out(once).split()[2].rstrip(":")
    team_id, team_link = out(team).split()[3].rstrip(":"), out(team).splitlines()[1]
    assert await register(node, "tess", team_link.split("#invite=")[1]) == 201

    listed = await chatnode("invite", "list", "--data-dir", data)
    assert listed.returncode == 0, err(listed)
    lines = {line.split()[0]: line for line in out(listed).splitlines()}
    assert set(lines) == {once_id, team_id}
    assert " active " in lines[once_id] and "1/1 uses left" in lines[once_id]
    assert "2/3 uses left" in lines[team_id] and "makes admins" in lines[team_id]
    assert "by (cli)" in lines[team_id]
    for created in (once, team):
        assert out(created).split("#invite=")[1].strip() not in out(listed)
    async with RestClient(node.url) as tess:
        await tess.login("tess", PASSWORD)
        assert (await tess.request("GET", "/api/v1/me"))["role"] == "admin"

    revoked = await chatnode("invite", "revoke", team_id, "--data-dir", data)
    assert (revoked.returncode, out(revoked).strip()) == (0, f"revoked {team_id}")
    assert await register(node, "tom", team_link.split("#invite=")[1]) == 403
    lines = {line.split()[0]: line for line in out(
        await chatnode("invite", "list", "--data-dir", data)).splitlines()}
    assert " revoked " in lines[team_id] and " active " in lines[once_id]

    unknown = await chatnode("invite", "revoke", "i_nope", "--data-dir", data)
    assert unknown.returncode == 1 and "no invite with id 'i_nope'" in err(unknown)
    bad = await chatnode("invite", "create", "--expires", "soon", "--data-dir", data)
    assert bad.returncode == 2 and "30m, 12h or 7d" in err(bad)
    assert len(out(await chatnode("invite", "list", "--data-dir", data)).splitlines()) == 2
