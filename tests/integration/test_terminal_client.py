"""`chatnode client` driven through a pseudo-terminal against a real node."""

import os
import pty
import select
import subprocess
import sys
import time

import trio

from chatnode.client import connect

from ..conftest import PASSWORD, Node, new_user


class Terminal:
    """The client in a pty: type lines, wait for text on the screen."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen([sys.executable, "-m", "chatnode", *args], stdin=slave,
                                        stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.screen = ""

    def type(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def _read_until(self, text: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while text not in self.screen and time.monotonic() < end:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.screen += os.read(self.master, 65536).decode(errors="replace")
                except OSError:
                    break
        return text in self.screen

    async def expect(self, text: str, timeout: float = 15) -> None:
        found = await trio.to_thread.run_sync(self._read_until, text, timeout)
        assert found, f"{text!r} not on screen:\n{self.screen[-2000:]}"

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        os.close(self.master)


async def test_terminal_client_chats_with_ticks_and_survives_a_node_restart(
        own_node: Node) -> None:
    node = own_node.start()
    alice, bob = await new_user(node, "alice"), await new_user(node, "bob")
    cid = (await alice.rest.direct(bob.user_id))["conversation_id"]
    await bob.rest.send(cid, "hi from before")
    term = Terminal(["client", "--url", node.url, "--user", alice.username], own_node.env)
    try:
        await term.expect("Password")
        term.type(PASSWORD)
        await term.expect(f"logged in as {alice.username}")
        await term.expect(f"{bob.username}: hi from before")
        await term.expect(f"{bob.username} is")  # presence in the catch-up
        term.type(f"/open {bob.username}")
        await term.expect(f"-- {bob.username} --")

        async with connect(node.url, bob.token) as (b, _):
            await b.send({"type": "typing", "conversation_id": cid})
            await term.expect(f"{bob.username} is typing")
            await b.send_text(cid, "are you there?")
            await term.expect(f"{bob.username}: are you there?")
            term.type("yes, in a terminal")
            message, _ = await b.until_type("message")
            assert message["body"] == "yes, in a terminal" and message["seq"] == 3
            await term.expect("[3] ✓")
            await b.read(cid, 3)
            await term.expect("[3] ✓✓ read")

        node.stop()
        await term.expect("disconnected")
        node.restart()
        await bob.rest.send(cid, "after the restart")
        await term.expect(f"{bob.username}: after the restart", timeout=30)
        assert term.screen.count("are you there?") == 1  # caught up, nothing twice
        term.type("/quit")
        assert await trio.to_thread.run_sync(term.process.wait, 10) == 0
    finally:
        if term.process.poll() is None:
            term.close()
    await alice.rest.aclose()
    await bob.rest.aclose()
