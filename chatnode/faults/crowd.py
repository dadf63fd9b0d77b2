"""The people of a fault run: users in a ring of direct chats plus two groups, some with a
second device, all created over REST before the run starts."""

from __future__ import annotations

import random
import secrets

from ..client import RestClient
from .device import Account, Device

PASSWORD = "fault script password"


async def gather_crowd(url: str, users: int, rng: random.Random) -> list[Device]:
    """`users` accounts (at least 3); every third one also logs in from a second device."""
    rest = RestClient(url)
    try:
        accounts = []
        for i in range(users):
            username = f"f{i}{secrets.token_hex(3)}"
            auth = await rest.register(username, PASSWORD)
            accounts.append(Account(username, auth["user_id"], auth["token"]))
        member_of: dict[str, list[str]] = {a.user_id: [] for a in accounts}
        for a, b in zip(accounts, accounts[1:] + accounts[:1], strict=True):
            rest.token = a.token
            cid = (await rest.direct(b.user_id))["conversation_id"]
            member_of[a.user_id].append(cid)
            member_of[b.user_id].append(cid)
        for name, people in (("everyone", accounts), ("half", accounts[: users // 2 + 1])):
            rest.token = people[0].token
            cid = (await rest.group(name, [p.user_id for p in people[1:]]))["conversation_id"]
            for p in people:
                member_of[p.user_id].append(cid)
        devices = []
        for i, account in enumerate(accounts):
            logins = [account]
            if i % 3 == 0:
                second = await rest.login(account.username, PASSWORD, "second device")
                logins.append(Account(account.username, account.user_id, second["token"]))
            for n, login in enumerate(logins):
                devices.append(Device(f"{account.username}.{n}", login,
                                      member_of[account.user_id], random.Random(rng.random())))
        return devices
    finally:
        await rest.aclose()
