"""Load processes, seen from the bench: start with a spec, then go, result, stop."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import trio


class LineReader:
    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def line(self) -> str:
        while b"\n" not in self.buffer:
            chunk = await self.stream.receive_some(1 << 20)
            if not chunk:
                raise RuntimeError("a load process ended early (its error is above)")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


class LoadProcess:
    def __init__(self, process: trio.Process) -> None:
        self.process = process
        assert process.stdout is not None and process.stdin is not None
        self.lines = LineReader(process.stdout)

    @classmethod
    async def start(cls, nursery: trio.Nursery, spec: dict[str, Any]) -> LoadProcess:
        process = await nursery.start(lambda task_status: trio.run_process(
            [sys.executable, "-m", "chatnode.bench.worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, check=False, task_status=task_status))
        worker = cls(process)
        await worker.say(json.dumps(spec))
        return worker

    async def say(self, line: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all((line + "\n").encode())

    async def expect(self, word: str) -> str:
        line = await self.lines.line()
        if not line.startswith(word):
            raise RuntimeError(f"load process said {line[:200]!r}, expected {word!r}")
        return line[len(word):].strip()

    async def result(self) -> dict[str, Any]:
        return json.loads(await self.expect("result"))


async def run_all(specs: list[dict[str, Any]], *, at_go: Callable[[], None] | None = None,
                  at_results: Callable[[], None] | None = None,
                  between: Callable[[], Awaitable[None]] | None = None) -> list[dict[str, Any]]:
    """Start one load process per spec, wait until all are ready, start them together, collect
    their results. `at_go()` and `at_results()` run at the edges of the measured phase (to read
    the node's CPU time); `between()` before the processes close their sessions."""
    async with trio.open_nursery() as nursery:
        workers = [await LoadProcess.start(nursery, spec) for spec in specs]
        for worker in workers:
            await worker.expect("ready")
        if at_go is not None:
            at_go()
        # scripts/profile starts sampling on this line: the measured phase begins.
        print("measuring…", file=sys.stderr, flush=True)
        for worker in workers:
            await worker.say("go")
        results = [await worker.result() for worker in workers]
        if at_results is not None:
            at_results()
        if between is not None:
            await between()
        for worker in workers:
            await worker.say("stop")
    return results


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """Round-robin into `parts` non-empty lists (fewer if there are fewer items)."""
    parts = max(1, min(parts, len(items)))
    return [items[i::parts] for i in range(parts)]
