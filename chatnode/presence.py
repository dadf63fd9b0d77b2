"""Presence (online / last seen) and typing indicators.

Online while at least one session of the user is live. Going offline is announced only after
OFFLINE_GRACE_S: a user whose phone drops and reconnects within it (a flap) produces no frames
at all, and nobody is ever shown offline while a session of theirs is live. Typing is shown to
the other members, refreshed by the typer, and cleared TYPING_TIMEOUT_S after the last refresh,
at once when the typer sends a message there, or when they go offline. Nothing here is stored
but last_seen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .engine import Engine
from .hub import Hub
from .protocol import Presence, TypingEvent
from .store import now_ms
from .timers import Timers

if TYPE_CHECKING:
    from .cluster.link import ClusterLink

OFFLINE_GRACE_S = 2.0
TYPING_TIMEOUT_S = 5.0
# A refresh within this of the last forwarded `typing: true` only extends the deadline; it is
# not forwarded again, so a client spamming `typing` costs the others nothing.
TYPING_FORWARD_EVERY_S = 2.0


class PresenceTracker:
    def __init__(self, engine: Engine, hub: Hub, timers: Timers,
                 save_last_seen: Callable[[str, int], None]) -> None:
        self.engine = engine
        self.hub = hub
        self.timers = timers
        self.save_last_seen = save_last_seen
        self.last_seen: dict[str, int] = {}
        # (user, conversation) -> when `typing: true` was last forwarded (trio clock)
        self._typing: dict[tuple[str, str], float] = {}
        # In a cluster: online means online on any node, and changes here cross to the others.
        self.cluster: ClusterLink | None = None

    # --- presence -----------------------------------------------------------------------------

    def shown_online(self, user_id: str) -> bool:
        """What watchers have been told: live, or gone too recently to be announced."""
        return (self.hub.is_online(user_id) or self.timers.pending(("offline", user_id))
                or (self.cluster is not None and self.cluster.online_elsewhere(user_id)))

    def session_opened(self, user_id: str, first: bool) -> None:
        """Call after registering a session; `first` when the user had no other session."""
        if not first:
            return
        if self.timers.cancel(("offline", user_id)):
            return  # a flap: the watchers never saw them go
        if self.cluster is not None:
            elsewhere = self.cluster.online_elsewhere(user_id)
            self.cluster.presence_changed(user_id, True, now_ms())
            if elsewhere:
                return  # watchers see them online already
        self._announce(user_id, Presence(user_id, True, now_ms()))

    def session_closed(self, user_id: str) -> None:
        """Call after unregistering a session."""
        if self.hub.is_online(user_id):
            return
        seen = now_ms()
        self.last_seen[user_id] = seen
        self.save_last_seen(user_id, seen)
        for key in [k for k in self._typing if k[0] == user_id]:
            self._stop_typing(*key)
        self.timers.call_later(OFFLINE_GRACE_S, ("offline", user_id),
                               lambda: self._gone(user_id, seen))

    def _gone(self, user_id: str, seen: int) -> None:
        if self.cluster is not None:
            self.cluster.presence_changed(user_id, False, seen)
            if self.cluster.online_elsewhere(user_id):
                return  # still online on another node
        self._announce(user_id, Presence(user_id, False, seen))

    def changed_elsewhere(self, user_id: str, was_online: bool, last_seen: int) -> None:
        """Another node's sessions of the user came or went (or the node did): announce it
        here if that changed what watchers are shown."""
        online = self.shown_online(user_id)
        if online != was_online:
            self._announce(user_id, Presence(user_id, online,
                                             now_ms() if online else last_seen))

    def _announce(self, user_id: str, frame: Presence) -> None:
        self.hub.publish(self.engine.peers_of(user_id), frame)

    def snapshot(self, user_id: str, stored_last_seen: dict[str, int | None]) -> list[Presence]:
        """One presence frame per user sharing a conversation with `user_id`, for the catch-up.
        `stored_last_seen` is what the store holds for users this process has not seen go."""
        return [self.frame_for(peer, stored_last_seen)
                for peer in sorted(self.engine.peers_of(user_id))]

    def frame_for(self, user_id: str, stored_last_seen: dict[str, int | None]) -> Presence:
        if self.shown_online(user_id):
            return Presence(user_id, True, now_ms())
        return Presence(user_id, False, self.last_seen.get(user_id, stored_last_seen.get(user_id)))

    # --- typing -------------------------------------------------------------------------------

    def typing(self, user_id: str, conversation_id: str, now: float) -> None:
        key = (user_id, conversation_id)
        last = self._typing.get(key)
        if last is None or now - last >= TYPING_FORWARD_EVERY_S:
            self._typing[key] = now
            self._publish_typing(user_id, conversation_id, True)
        self.timers.call_later(TYPING_TIMEOUT_S, ("typing", *key),
                               lambda: self._stop_typing(user_id, conversation_id))

    def message_sent(self, user_id: str, conversation_id: str) -> None:
        if (user_id, conversation_id) in self._typing:
            self._stop_typing(user_id, conversation_id)

    def _stop_typing(self, user_id: str, conversation_id: str) -> None:
        self.timers.cancel(("typing", user_id, conversation_id))
        if self._typing.pop((user_id, conversation_id), None) is not None:
            self._publish_typing(user_id, conversation_id, False)

    def _publish_typing(self, user_id: str, conversation_id: str, typing: bool) -> None:
        conv = self.engine.conversations.get(conversation_id)
        if conv is None:
            return
        others = [m for m in conv.members if m != user_id]
        self.hub.publish(others, TypingEvent(conversation_id, user_id, typing))
        if self.cluster is not None:
            self.cluster.typing(user_id, conversation_id, typing)
