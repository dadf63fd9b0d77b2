"""Every frame and REST body of the wire protocol (PROTOCOL.md), as typed msgspec structs.

This module is the single source of truth for what crosses the wire: one decode validates and
builds a typed frame, for JSON and MessagePack alike, and `json_schema()` exports the same
definitions for client authors. Nothing here does I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

SUBPROTOCOL_JSON = "chatnode.v1.json"
SUBPROTOCOL_MSGPACK = "chatnode.v1.msgpack"
Codec = Literal["json", "msgpack"]

# Field shapes, shared by frames and REST bodies.
Id = Annotated[str, Meta(min_length=1, max_length=64)]
ClientMsgId = Annotated[str, Meta(min_length=1, max_length=128)]
MAX_SEQ = 2**53  # the largest integer every JSON client reads exactly
Seq = Annotated[int, Meta(ge=0, le=MAX_SEQ)]
Username = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]
Password = Annotated[str, Meta(min_length=8, max_length=1024)]
DisplayName = Annotated[str, Meta(min_length=1, max_length=64)]
MessageKind = Literal["text", "media", "reaction", "edit", "delete"]
# The pong echoes the id on the session's codec, so a number must fit MessagePack's integers
# even when it came as JSON (a text frame on a MessagePack session is JSON): int64, the widest
# range msgspec can bound.
PingNumber = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]


# --- errors ---------------------------------------------------------------------------------

class ErrorCode:
    BAD_FRAME = "bad_frame"
    INVALID = "invalid"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    INVALID_SEQ = "invalid_seq"
    CONFLICT = "conflict"
    REGISTRATION_CLOSED = "registration_closed"
    INTERNAL = "internal"


HTTP_STATUS = {
    ErrorCode.BAD_FRAME: 400,
    ErrorCode.INVALID: 400,
    ErrorCode.INVALID_SEQ: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.REGISTRATION_CLOSED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
}


class ChatError(Exception):
    """A refusal the client is told about; it never changes state."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        ref: str | None = None,
        retry_after_ms: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.retry_after_ms = retry_after_ms
        self.http_status = http_status or HTTP_STATUS[code]

    def frame(self) -> Error:
        return Error(
            code=self.code, message=self.message, ref=self.ref, retry_after_ms=self.retry_after_ms
        )


# --- client -> server ------------------------------------------------------------------------

class ClientFrame(Struct, tag_field="type", forbid_unknown_fields=False):
    pass


class Hello(ClientFrame, tag="hello"):
    token: Annotated[str, Meta(min_length=1, max_length=256)]
    sync: dict[Id, Seq] | None = None
    client: Annotated[str, Meta(max_length=128)] | None = None


class AddMemberRequest(Struct):
    user_id: Id


class SetRoleRequest(Struct):
    role: Literal["admin", "member"]


class RenameRequest(Struct):
    name: Annotated[str, Meta(min_length=1, max_length=128)]


class SendRequest(Struct):
    """What a message is made of: the body of POST /conversations/{id}/messages, and the
    `send` frame without its conversation."""

    client_msg_id: ClientMsgId
    body: str = ""
    kind: MessageKind = "text"
    media_id: Id | None = None
    reply_to: Seq | None = None
    target: Seq | None = None


class Send(ClientFrame, SendRequest, tag="send", kw_only=True):
    conversation_id: Id


class Delivered(ClientFrame, tag="delivered"):
    conversation_id: Id
    seq: Seq


class Read(ClientFrame, tag="read"):
    conversation_id: Id
    seq: Seq


class Typing(ClientFrame, tag="typing"):
    conversation_id: Id


class Ping(ClientFrame, tag="ping"):
    id: Annotated[str, Meta(max_length=128)] | PingNumber | None = None


AnyClientFrame = Hello | Send | Delivered | Read | Typing | Ping


# --- server -> client ------------------------------------------------------------------------

class ServerFrame(Struct, tag_field="type", omit_defaults=True):
    pass


class Welcome(ServerFrame, tag="welcome"):
    user_id: str
    device_id: str
    server_time: int
    heartbeat_s: int


class MessageFields(Struct, omit_defaults=True):
    """One entry of a conversation's log, as the `message` frame and history carry it."""

    conversation_id: str
    seq: int
    sender_id: str
    client_msg_id: str
    kind: str
    body: str
    ts: int
    media_id: str | None = None
    reply_to: int | None = None
    target: int | None = None


class Message(ServerFrame, MessageFields, tag="message"):
    pass


class Sent(ServerFrame, tag="sent"):
    conversation_id: str
    client_msg_id: str
    seq: int
    ts: int


class StatusUpdate(ServerFrame, tag="status_update"):
    conversation_id: str
    last_seq: int
    last_delivered_seq: int
    last_read_seq: int
    my_read_seq: int


class Synced(ServerFrame, tag="synced"):
    conversations: int
    messages: int


class MemberInfo(Struct, omit_defaults=True):
    """A member as a conversation lists it. The REST answers add who they are (display name,
    avatar); the `conversation` frame carries only ids and roles (`user_updated` follows
    names)."""

    user_id: str
    role: str
    display_name: str | None = None
    avatar: str | None = None


class ConversationFrame(ServerFrame, tag="conversation"):
    conversation_id: str
    kind: str
    name: str | None
    members: list[MemberInfo]
    last_seq: int


class Presence(ServerFrame, tag="presence"):
    user_id: str
    online: bool
    last_seen: int | None


class TypingEvent(ServerFrame, tag="typing"):
    conversation_id: str
    user_id: str
    typing: bool


class UserUpdated(ServerFrame, tag="user_updated"):
    """A user changed their display name or avatar (an addition to PROTOCOL.md): sent to
    everyone who shares a conversation with them and to all their own sessions. `avatar` is
    the id to fetch at GET /api/v1/avatars/{avatar}, absent when they have none."""

    user_id: str
    username: str
    display_name: str
    avatar: str | None = None


class Error(ServerFrame, tag="error"):
    code: str
    message: str
    ref: str | None = None
    retry_after_ms: int | None = None


class Pong(ServerFrame, tag="pong"):
    id: str | int | None = None


AnyServerFrame = (
    Welcome | Message | Sent | StatusUpdate | Synced | ConversationFrame | Presence | TypingEvent
    | UserUpdated | Error | Pong
)


# --- REST bodies -----------------------------------------------------------------------------

class RegisterRequest(Struct):
    username: Username
    password: Password
    display_name: DisplayName | None = None
    # The token of an invite link (`#invite=TOKEN`): needed when registration = "invite".
    invite: Annotated[str, Meta(min_length=1, max_length=256)] | None = None


class LoginRequest(Struct):
    username: Annotated[str, Meta(min_length=1, max_length=64)]
    password: Annotated[str, Meta(min_length=1, max_length=1024)]
    device_name: Annotated[str, Meta(max_length=64)] | None = None


class CreateConversationRequest(Struct):
    kind: Literal["direct", "group"]
    members: Annotated[list[Id], Meta(max_length=10_000)]
    name: Annotated[str, Meta(min_length=1, max_length=128)] | None = None


class AuthResponse(Struct):
    user_id: str
    token: str
    device_id: str


class MediaInfo(Struct):
    media_id: str
    size: int
    content_type: str


class UserInfo(Struct, omit_defaults=True):
    user_id: str
    username: str
    display_name: str
    avatar: str | None = None  # see UserUpdated; absent when the user has none


class ConversationInfo(Struct):
    conversation_id: str
    kind: str
    name: str | None
    members: list[MemberInfo]
    last_seq: int
    last_delivered_seq: int
    last_read_seq: int
    my_read_seq: int
    unread: int
    last_message: Message | None


class ConversationList(Struct):
    conversations: list[ConversationInfo]


class FoldedMessage(MessageFields, omit_defaults=True):
    """A message of `GET …/messages?fold=true`: its latest edit and current reactions folded
    in (`reactions` maps an emoji to the users who chose it)."""

    edited: bool = False
    reactions: dict[str, list[str]] = msgspec.field(default_factory=dict)


class HistoryPage(Struct):
    messages: list[Message]
    has_more: bool


class FoldedHistoryPage(Struct):
    messages: list[FoldedMessage]
    has_more: bool


class SearchHit(Struct):
    """A message that matches a search. `snippet` is its current text, cut to about 160
    characters around the first match ("…" where it was cut); `marks` are the matched ranges
    in it as [start, end) offsets in Unicode code points (what `Array.from(snippet)` indexes),
    so a client shows them without ever parsing the text as markup."""

    conversation_id: str
    seq: int
    sender_id: str
    ts: int
    kind: str
    snippet: str
    marks: list[tuple[int, int]]


class SearchPage(Struct):
    """Hits newest first. `next_before` is the cursor of the next (older) page, passed back as
    `before`; null when there is no more."""

    hits: list[SearchHit]
    next_before: int | None


PushPreview = Literal["full", "sender", "none"]
Base64Url = Annotated[str, Meta(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_-]+=*$")]
PushEndpoint = Annotated[str, Meta(min_length=1, max_length=2048)]


class WebPushKeys(Struct):
    p256dh: Base64Url
    auth: Base64Url


class WebPushTarget(Struct, tag_field="kind", tag="webpush"):
    """What `PushSubscription.toJSON()` gives in a browser, with `kind` added."""

    endpoint: PushEndpoint
    keys: WebPushKeys
    expirationTime: float | None = None


class UnifiedPushTarget(Struct, tag_field="kind", tag="unifiedpush"):
    """A UnifiedPush endpoint (from a distributor such as ntfy's app): the node POSTs each
    notification's JSON to it, for the app that registered it."""

    endpoint: PushEndpoint


class NtfyTarget(Struct, tag_field="kind", tag="ntfy"):
    """A plain ntfy topic URL, watched with the ntfy app: the node publishes a readable title
    and message to it."""

    endpoint: PushEndpoint


PushTargetRequest = WebPushTarget | UnifiedPushTarget | NtfyTarget


class PushTargetInfo(Struct):
    kind: str
    endpoint: str


class PushKey(Struct):
    """The node's VAPID public key (RFC 8292): a browser's `applicationServerKey`."""

    vapid_public_key: str


class Me(Struct, omit_defaults=True):
    user_id: str
    username: str
    display_name: str
    push_preview: str
    role: str  # node-wide: "admin" may make invites and disable users
    avatar: str | None = None  # absent when the user has none


Role = Literal["user", "admin"]


class InviteRequest(Struct, forbid_unknown_fields=True):
    """An invite to make: how many accounts it may make, how long it lasts (30m, 12h, 7d), and
    whether the accounts it makes are admins."""

    uses: Annotated[int, Meta(ge=1, le=1000)] = 1
    expires: Annotated[str, Meta(min_length=2, max_length=16)] = "7d"
    admin: bool = False


class InviteCreated(Struct):
    """A new invite. `token` and `link` are shown this once: the node keeps only a hash."""

    invite_id: str
    token: str
    link: str
    max_uses: int
    expires_at: int
    admin: bool


class InviteInfo(Struct):
    """An invite as listed, without its token. `state` is `active`, `used`, `expired` or
    `revoked`; `created_by` is the admin's username (null when made with the CLI)."""

    invite_id: str
    state: str
    max_uses: int
    uses_left: int
    admin: bool
    created_by: str | None
    created_at: int
    expires_at: int


class InviteList(Struct):
    invites: list[InviteInfo]


class UserUpdate(Struct, forbid_unknown_fields=True):
    """An admin's change to someone else's account: disable (or enable) it, change its role."""

    disabled: bool | None = None
    role: Role | None = None


class AccountInfo(Struct):
    """An account as an admin sees it. `last_seen`: when its last session ended (the current
    time while one is live), null if it never connected."""

    user_id: str
    username: str
    display_name: str
    role: str
    disabled: bool
    created_at: int
    last_seen: int | None


class AccountList(Struct):
    """GET /api/v1/users: every account of the node, by username (admins only)."""

    users: list[AccountInfo]


class PasswordReset(Struct, forbid_unknown_fields=True):
    """An admin gives someone else's account a new password (registration's rules); every
    device of that account is logged out."""

    new_password: Password


class MeUpdate(Struct, forbid_unknown_fields=True):
    """Change one's own account; at least one field. `push_preview` is how much a push may
    say: the message (`full`), who wrote (`sender`), or nothing but that there is a new
    message (`none`): push services and lock screens see what it says. `display_name` is
    what others see (not blank); they get a `user_updated` frame."""

    push_preview: PushPreview | None = None
    display_name: DisplayName | None = None


class PasswordChange(Struct, forbid_unknown_fields=True):
    """POST /api/v1/me/password. `new_password` follows registration's rules; with
    `log_out_others` every other device of the account is logged out at once."""

    current_password: Annotated[str, Meta(min_length=1, max_length=1024)]
    new_password: Password
    log_out_others: bool = False


class PasswordChanged(Struct):
    devices_logged_out: int


class DeviceInfo(Struct):
    """One login of the caller. `last_seen`: the last time it connected or made a request
    (written at most once a minute, and when a session ends; now while a session is live)."""

    device_id: str
    name: str | None
    created_at: int
    last_seen: int | None
    current: bool


class DeviceList(Struct):
    devices: list[DeviceInfo]


class EmptyResponse(Struct, forbid_unknown_fields=True):
    """`{}`: the answer to logout, and to leaving a group (the leaver no longer sees it)."""


class HealthStatus(Struct, omit_defaults=True):
    """GET /healthz: `ok` when a write to the store commits, `unavailable` with the reason."""

    status: Literal["ok", "unavailable"]
    reason: str | None = None


class ErrorBody(Struct):
    code: str
    message: str


class ErrorResponse(Struct):
    error: ErrorBody


# --- codecs ----------------------------------------------------------------------------------

_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()
_json_decoder = msgspec.json.Decoder(AnyClientFrame)
_msgpack_decoder = msgspec.msgpack.Decoder(AnyClientFrame)
_json_any = msgspec.json.Decoder()
_msgpack_any = msgspec.msgpack.Decoder()


def encode(frame: ServerFrame, codec: Codec) -> bytes:
    if codec == "json":
        return _json_encoder.encode(frame)
    return _msgpack_encoder.encode(frame)


def encode_json(value: Any) -> bytes:
    return _json_encoder.encode(value)


def decode_client_frame(data: bytes | str, codec: Codec) -> AnyClientFrame:
    """Decode and validate one client frame, or raise ChatError (bad_frame / invalid).

    `ref` is filled from the raw map when possible, so a client can match the error to the
    frame it sent even when that frame did not validate.
    """
    decoder = _json_decoder if codec == "json" else _msgpack_decoder
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if _not_a_map(text):
            raise ChatError(ErrorCode.BAD_FRAME, "a frame must be a map") from None
        raise ChatError(ErrorCode.INVALID, text, ref=_ref_of(data, codec)) from None
    except _UNDECODABLE as exc:
        raise ChatError(ErrorCode.BAD_FRAME, f"not decodable: {_why(exc)}") from None


# msgspec raises DecodeError for most unreadable input, but lets two kinds through as they are:
# a string that is not UTF-8 (a MessagePack str of other bytes, a str with a lone surrogate) and
# nesting deeper than the interpreter's recursion limit (a few KiB of `[`).
_UNDECODABLE = (msgspec.DecodeError, UnicodeError, RecursionError)


def _why(exc: Exception) -> str:
    if isinstance(exc, UnicodeError):
        return "a string is not valid UTF-8"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def _not_a_map(validation_error: str) -> bool:
    """Whether the top level itself is not a map (bad_frame), rather than a field of the map
    being wrong (invalid, naming the field as `- at `$.field``)."""
    return validation_error.startswith("Expected `object`") and " - at `" not in validation_error


def _ref_of(data: bytes | str, codec: Codec) -> str | None:
    try:
        raw = (_json_any if codec == "json" else _msgpack_any).decode(data)
    except _UNDECODABLE:
        return None
    if not isinstance(raw, dict):
        return None
    for key in ("client_msg_id", "type"):
        value = raw.get(key)
        if isinstance(value, str) and len(value) <= 128:
            return value
    return None


def decode_body(data: bytes, type_: type[Any]) -> Any:
    """Decode a REST JSON body into `type_`, or raise ChatError naming what is wrong."""
    try:
        return msgspec.json.decode(data, type=type_)
    except msgspec.ValidationError as exc:
        if _not_a_map(str(exc)):
            raise ChatError(ErrorCode.BAD_FRAME, "the body must be a JSON object") from None
        raise ChatError(ErrorCode.INVALID, str(exc)) from None
    except _UNDECODABLE as exc:
        raise ChatError(ErrorCode.BAD_FRAME, f"body is not JSON: {_why(exc)}") from None


REST_BODIES = (
    RegisterRequest, LoginRequest, AuthResponse, UserInfo, CreateConversationRequest,
    AddMemberRequest, SetRoleRequest, RenameRequest, SendRequest, ConversationInfo,
    ConversationList, HistoryPage, FoldedHistoryPage, MediaInfo, EmptyResponse, HealthStatus,
    ErrorResponse, Me, MeUpdate, WebPushTarget, UnifiedPushTarget, NtfyTarget, PushTargetInfo,
    PushKey, PasswordChange, PasswordChanged, DeviceInfo, DeviceList, SearchPage,
    InviteRequest, InviteCreated, InviteInfo, InviteList, UserUpdate, AccountInfo,
    AccountList, PasswordReset,
)


def json_schema() -> dict[str, Any]:
    """JSON Schema of every frame and REST body, for people writing their own clients."""
    schemas, components = msgspec.json.schema_components(
        [AnyClientFrame, AnyServerFrame, *REST_BODIES], ref_template="#/$defs/{name}"
    )
    client, server, *bodies = schemas
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "chatnode wire protocol v1",
        "$defs": components,
        "properties": {
            "client_frame": client,
            "server_frame": server,
            "rest": {"anyOf": bodies},
        },
    }
