"""The browser app's files: served by the node from the package, complete, and self-contained."""

import json
import re

import httpx

from chatnode.web.shell import STATIC_DIR

from ..conftest import Node


async def get(node: Node, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=node.url) as http:
        return await http.get(path)


def shell_of(worker: str) -> list[str]:
    match = re.search(r"const SHELL = (\[.*?\]);", worker)
    assert match, "the service worker's file list was not filled in"
    return json.loads(match.group(1))


async def test_the_app_is_served_at_the_root_with_a_service_worker_for_its_shell(
        node: Node) -> None:
    index = await get(node, "/")
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    assert '<script type="module" src="/static/app/main.js">' in index.text
    worker = await get(node, "/sw.js")
    assert worker.status_code == 200 and "javascript" in worker.headers["content-type"]
    assert "__VERSION__" not in worker.text and re.search(r"VERSION = '[0-9a-f]{16}'", worker.text)
    assert worker.headers["cache-control"] == "no-cache"  # so browsers see a new version
    shell = shell_of(worker.text)
    assert "/" in shell and "/static/app/main.js" in shell and "/static/vendor/preact.mjs" in shell
    for path in shell:  # everything the worker caches at install exists, or install would fail
        assert (await get(node, path)).status_code == 200, path


async def test_the_manifest_makes_it_installable(node: Node) -> None:
    manifest = (await get(node, "/static/manifest.webmanifest")).json()
    assert manifest["start_url"] == "/" and manifest["display"] == "standalone"
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in manifest["icons"]:
        served = await get(node, icon["src"])
        assert served.status_code == 200 and served.headers["content-type"] == icon["type"]


def test_no_file_of_the_app_refers_to_another_host() -> None:
    """No CDN, no fonts, no analytics: the app works on a LAN with no internet."""
    url = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.IGNORECASE)
    allowed = {"//www.w3.org"}  # the SVG namespace: an identifier, never fetched
    for path in STATIC_DIR.rglob("*"):
        if path.suffix not in {".html", ".js", ".mjs", ".css", ".webmanifest", ".svg"}:
            continue
        found = {m.group(0).split(":", 1)[-1] for m in url.finditer(path.read_text())}
        assert found <= allowed, f"{path.name} refers to {found - allowed}"
