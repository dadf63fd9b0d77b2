"""The README's tour: two users chat through a running node, with ticks.

    python scripts/tour.py --url http://127.0.0.1:8420 alice PASSWORD bob PASSWORD
"""

from __future__ import annotations

import argparse

import trio

from chatnode.client import RestClient, connect


async def tour(url: str, user_a: str, password_a: str, user_b: str, password_b: str) -> None:
    async with RestClient(url) as alice, RestClient(url) as bob:
        await alice.login(user_a, password_a, "tour")
        await bob.login(user_b, password_b, "tour")
        bob_id = (await alice.user(user_b))["user_id"]
        conversation = (await alice.direct(bob_id))["conversation_id"]
        assert alice.token and bob.token
        async with connect(url, alice.token) as (a, _), connect(url, bob.token) as (b, _):
            await a.send_text(conversation, "Hi Bob, it's Alice!")
            sent, _ = await a.until_type("sent")
            print(f"{user_a}: Hi Bob, it's Alice!   ✓ (seq {sent['seq']})")
            message, _ = await b.until_type("message")
            print(f"{user_b} got: {message['body']!r}")
            await b.delivered(conversation, message["seq"])
            await a.until_type("status_update")
            print(f"{user_a} sees ✓✓ delivered")
            await b.read(conversation, message["seq"])
            await a.until_type("status_update")
            print(f"{user_a} sees ✓✓ read (blue)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8420")
    parser.add_argument("user_a")
    parser.add_argument("password_a")
    parser.add_argument("user_b")
    parser.add_argument("password_b")
    args = parser.parse_args()
    trio.run(tour, args.url, args.user_a, args.password_a, args.user_b, args.password_b)


if __name__ == "__main__":
    main()
