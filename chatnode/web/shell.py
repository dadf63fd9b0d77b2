"""The browser app: its files, served from inside the package, and the service worker.

There is no build step. The service worker gets two values filled in when the node starts: a
version (a hash of every app file, so an upgraded node makes browsers fetch the new shell) and
the list of files to cache, so the app opens with no connection to the node.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
_NOT_SHELL = {".md", ".txt"}  # vendored READMEs and licences: shipped, never fetched by the app
_REVALIDATE = {"Cache-Control": "no-cache"}  # the service worker does the offline caching


def _shell_files() -> list[Path]:
    return sorted(p for p in STATIC_DIR.rglob("*")
                  if p.is_file() and p.suffix not in _NOT_SHELL and p.name != "sw.js")


class AppShell:
    def __init__(self) -> None:
        files = _shell_files()
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.relative_to(STATIC_DIR).as_posix().encode())
            digest.update(path.read_bytes())
        self.version = digest.hexdigest()[:16]
        urls = ["/"] + [f"/static/{p.relative_to(STATIC_DIR).as_posix()}" for p in files
                        if p.name != "index.html"]
        self.service_worker = ((STATIC_DIR / "sw.js").read_text()
                               .replace("__VERSION__", self.version)
                               .replace("__SHELL__", json.dumps(urls)))

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.index, methods=["GET"]),
            # At the root so that its scope covers "/".
            Route("/sw.js", self.worker, methods=["GET"]),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]

    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers=_REVALIDATE)

    async def worker(self, request: Request) -> Response:
        return Response(self.service_worker, media_type="text/javascript", headers=_REVALIDATE)
