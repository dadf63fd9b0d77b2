"""The OpenAPI 3.1 document of the REST API, served at GET /api/v1/openapi.json.

Every request and response body in it is a protocol struct exported by msgspec, the same
definitions the server decodes and encodes with, so the bodies cannot drift from the code.
What a struct cannot say (which route answers which status, its parameters, who must
authenticate) is the table `OPERATIONS` below; a unit test checks that it names every route of
`Api.routes()` and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..protocol import (
    HTTP_STATUS,
    AccountInfo,
    AccountList,
    AddMemberRequest,
    AuthResponse,
    ConversationInfo,
    ConversationList,
    CreateConversationRequest,
    DeviceList,
    EmptyResponse,
    ErrorCode,
    ErrorResponse,
    FoldedHistoryPage,
    HealthStatus,
    HistoryPage,
    InviteCreated,
    InviteList,
    InviteRequest,
    LoginRequest,
    Me,
    MediaInfo,
    MeUpdate,
    NtfyTarget,
    PasswordChange,
    PasswordChanged,
    PasswordReset,
    PushKey,
    PushTargetInfo,
    RegisterRequest,
    RenameRequest,
    SearchPage,
    SendRequest,
    Sent,
    Seq,
    SetRoleRequest,
    UnifiedPushTarget,
    UserInfo,
    UserUpdate,
    WebPushTarget,
)
from ..search_text import QUERY_MAX_CHARS
from ..service import HISTORY_MAX_LIMIT
from .search_api import SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT

JSON = "application/json"
BINARY = "binary"  # a raw file, in or out
TEXT = "text"  # Prometheus' text format
ANY_OBJECT = "object"  # a JSON object that is a document of its own (the JSON Schemas)


@dataclass(frozen=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str


@dataclass(frozen=True)
class Operation:
    summary: str
    # status -> what the answer holds: a struct, a tuple of structs (any of them), or one of
    # BINARY, TEXT, ANY_OBJECT
    answers: dict[int, Any]
    errors: tuple[int, ...] = ()
    body: Any = None
    auth: bool = True
    query: tuple[Query, ...] = ()
    headers: dict[int, dict[str, Any]] = field(default_factory=dict)
    description: str = ""


_AUTH = (401,)  # no token, or an unknown, revoked or disabled one
# A body that does not decode or validate; one over frame_bytes; one that stops arriving.
_JSON_BODY = (400, 408, 413)
_WRITES = (503,)  # every route that writes: the store cannot be written (a full disk)

_SEQ_SCHEMA = msgspec.json.schema(Seq)

_DOWNLOAD_HEADERS = {
    "Cache-Control": {"schema": {"type": "string"}, "required": True,
                      "description": "private, immutable: the bytes behind a media_id never"
                                     " change"},
    "X-Content-Type-Options": {"schema": {"type": "string", "const": "nosniff"},
                               "required": True},
    "Content-Security-Policy": {"schema": {"type": "string"}, "required": True,
                                "description": "sandbox: an uploaded page never runs on the"
                                               " node's origin"},
}

V1 = "/api/v1"

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", f"{V1}/register"): Operation(
        "Create an account and log in as its first device (with an invite, or when"
        " registration is open)",
        {201: AuthResponse}, (*_JSON_BODY, 403, 409, 429, *_WRITES), body=RegisterRequest,
        auth=False,
        description="With `registration = \"invite\"` (the default) the body's `invite` is the"
                    " token of an invite link: without one 403 `registration_closed`, with one"
                    " that is unknown, used up, expired or revoked 403 `forbidden` saying which."
                    " `\"closed\"` refuses everyone with `registration_closed`; `\"open\"`"
                    " ignores `invite`. 409 when the username is taken. A refusal creates"
                    " nothing and uses up nothing."),
    ("POST", f"{V1}/login"): Operation(
        "Log in: every login is a new device with its own token",
        {200: AuthResponse}, (*_JSON_BODY, 401, 403, 429, *_WRITES), body=LoginRequest,
        auth=False, description="401 for a wrong username or password, 403 for a disabled"
                                " account."),
    ("POST", f"{V1}/logout"): Operation(
        "Revoke this token; the device's live sessions are closed",
        {200: EmptyResponse}, (*_AUTH, *_WRITES)),
    ("GET", f"{V1}/me"): Operation("Who this token belongs to", {200: Me}, _AUTH),
    ("PATCH", f"{V1}/me"): Operation(
        "Change the display name, or choose how much a push notification may say", {200: Me},
        (*_AUTH, *_JSON_BODY, *_WRITES), body=MeUpdate,
        description="At least one field. `display_name`: 1 to 64 characters, not blank;"
                    " everyone who shares a conversation gets a `user_updated` frame."
                    " `push_preview`: `full`, the sender and the message; `sender`: only who"
                    " wrote; `none`: only that a message came. Push services and lock screens"
                    " see it."),
    ("POST", f"{V1}/me/password"): Operation(
        "Change the password (the current one is required)", {200: PasswordChanged},
        (*_AUTH, *_JSON_BODY, 403, 429, *_WRITES), body=PasswordChange,
        description="403 when `current_password` is wrong, and nothing changes; attempts count"
                    " toward the login limit of the client's address (429). `new_password`"
                    " follows registration's rules (8 to 1024 characters). With"
                    " `log_out_others` every other device of the account is logged out: its"
                    " token stops working and its live sessions are closed with 4001."),
    ("PUT", f"{V1}/me/avatar"): Operation(
        "Set the avatar: the raw body is a PNG, JPEG, GIF or WebP image", {200: Me},
        (*_AUTH, 400, 408, 413, *_WRITES), body=BINARY,
        description="400 for anything that is not one of those images (known by its first"
                    " bytes, whatever the Content-Type says); 413 past 1 MiB. Nothing changes"
                    " on a refusal. Everyone who shares a conversation gets a `user_updated`"
                    " frame."),
    ("DELETE", f"{V1}/me/avatar"): Operation(
        "Remove the avatar", {200: Me}, (*_AUTH, *_WRITES)),
    ("GET", f"{V1}/avatars/{{avatar_id}}"): Operation(
        "A user's current avatar (the `avatar` of a user, member or `user_updated`)",
        {200: BINARY, 206: BINARY}, (*_AUTH, 404),
        headers={200: _DOWNLOAD_HEADERS, 206: _DOWNLOAD_HEADERS},
        description="To anyone logged in, as names are. 404 for an id that is no user's"
                    " avatar now."),
    ("GET", f"{V1}/devices"): Operation(
        "The caller's devices (logins), the current one marked", {200: DeviceList}, _AUTH,
        description="`last_seen`: the last time the device connected or made a request,"
                    " written at most once a minute and when a session ends; the current time"
                    " for a device with a live session."),
    ("DELETE", f"{V1}/devices/{{device_id}}"): Operation(
        "Log one of the caller's devices out", {200: DeviceList}, (*_AUTH, 404, *_WRITES),
        description="Its token stops working at once and its live sessions are closed with"
                    " 4001; the others stay. The answer is the devices left. 404 for a device"
                    " that is not the caller's or is already logged out."),
    ("POST", f"{V1}/invites"): Operation(
        "Make an invite (admins): its token and link are in this answer only",
        {201: InviteCreated}, (*_AUTH, *_JSON_BODY, 403, *_WRITES), body=InviteRequest,
        description="`uses` (default 1) accounts may register with it until `expires` (30m,"
                    " 12h, 7d; default 7d); with `admin` they are admins. The link starts with"
                    " the configured `public_url`, else the address of this request. 403 for"
                    " anyone but an admin; 400 for an expiry that is not a duration."),
    ("GET", f"{V1}/invites"): Operation(
        "Every invite, without tokens (admins)", {200: InviteList}, (*_AUTH, 403)),
    ("DELETE", f"{V1}/invites/{{invite_id}}"): Operation(
        "Revoke an invite (admins): it can no longer be used", {200: EmptyResponse},
        (*_AUTH, 403, 404, *_WRITES), description="404 when there is no such invite."),
    ("GET", f"{V1}/users"): Operation(
        "Every account of the node, by username (admins)", {200: AccountList}, (*_AUTH, 403),
        description="Disabled accounts too. `last_seen` is when the account's last session"
                    " ended, the current time while one is live, null if it never connected."),
    ("POST", f"{V1}/users/by-id/{{user_id}}/password"): Operation(
        "Give an account a new password and log out all its devices (admins)",
        {200: PasswordChanged}, (*_AUTH, *_JSON_BODY, 403, 404, 409, *_WRITES),
        body=PasswordReset,
        description="For someone who forgot theirs: `new_password` follows registration's"
                    " rules (8 to 1024 characters). Every device of the account is logged out:"
                    " its token stops working and its live sessions are closed with 4001, on"
                    " every node. 404 for an unknown user; 409 for the admin's own account"
                    " (POST /api/v1/me/password, with the current password). A refusal"
                    " changes nothing."),
    ("PATCH", f"{V1}/users/by-id/{{user_id}}"): Operation(
        "Disable or enable an account, or change its role (admins)", {200: AccountInfo},
        (*_AUTH, *_JSON_BODY, 403, 404, 409, *_WRITES), body=UserUpdate,
        description="A disabled account's tokens stop working and its live sessions are"
                    " closed (4001). 409 when an admin would disable or demote themselves."),
    ("GET", f"{V1}/push/key"): Operation(
        "The node's VAPID public key, a browser's applicationServerKey", {200: PushKey},
        (404,), auth=False, description="404 when push is turned off (`[push] enabled`)."),
    ("GET", f"{V1}/devices/me/push"): Operation(
        "This device's push target", {200: PushTargetInfo}, (*_AUTH, 404)),
    ("PUT", f"{V1}/devices/me/push"): Operation(
        "Set this device's push target, replacing any it had", {200: PushTargetInfo},
        (*_AUTH, *_JSON_BODY, 404, *_WRITES), body=(WebPushTarget, UnifiedPushTarget, NtfyTarget),
        description="A Web Push subscription (`PushSubscription.toJSON()` with `kind`"
                    " `webpush`), a UnifiedPush endpoint (`unifiedpush`) or a plain ntfy topic"
                    " URL (`ntfy`). The endpoint must be https:// (http:// too with `[push]"
                    " allow_http`) on a public address (private ones too with `[push]"
                    " allow_private`); a Web Push `p256dh` must be a P-256 key and `auth` 16"
                    " bytes, or 400. 404 when push is turned off."),
    ("DELETE", f"{V1}/devices/me/push"): Operation(
        "Remove this device's push target (logging out does too)", {200: EmptyResponse},
        (*_AUTH, *_WRITES)),
    ("GET", f"{V1}/users/by-id/{{user_id}}"): Operation(
        "Who a user id is", {200: UserInfo}, (*_AUTH, 404)),
    ("GET", f"{V1}/users/{{username}}"): Operation(
        "Find an enabled user by name", {200: UserInfo}, (*_AUTH, 404)),
    ("GET", f"{V1}/conversations"): Operation(
        "The caller's conversations, with markers, unread count and last message",
        {200: ConversationList}, _AUTH),
    ("POST", f"{V1}/conversations"): Operation(
        "Start a direct conversation or a group",
        {201: ConversationInfo, 200: ConversationInfo},
        (*_AUTH, *_JSON_BODY, 404, *_WRITES), body=CreateConversationRequest,
        description="201 for a new conversation; 200 with the existing direct conversation of"
                    " the pair. 404 names a member who does not exist; 413 also answers a"
                    " group over `group_members`."),
    ("GET", f"{V1}/conversations/{{cid}}"): Operation(
        "One conversation, as in the list", {200: ConversationInfo}, (*_AUTH, 403),
        description="403 whether the conversation does not exist or the caller is not a"
                    " member: strangers learn nothing."),
    ("PATCH", f"{V1}/conversations/{{cid}}"): Operation(
        "Rename a group (admins)", {200: ConversationInfo},
        (*_AUTH, *_JSON_BODY, 403, *_WRITES), body=RenameRequest,
        description="400 for a direct conversation, whose name is fixed."),
    ("POST", f"{V1}/conversations/{{cid}}/members"): Operation(
        "Add a member to a group (admins)", {200: ConversationInfo},
        (*_AUTH, *_JSON_BODY, 403, 404, 409, *_WRITES), body=AddMemberRequest,
        description="409 for a member already there; 413 past `group_members`; 400 for a"
                    " direct conversation."),
    ("PATCH", f"{V1}/conversations/{{cid}}/members/{{uid}}"): Operation(
        "Promote or demote a member (admins)", {200: ConversationInfo},
        (*_AUTH, *_JSON_BODY, 403, 404, 409, *_WRITES), body=SetRoleRequest,
        description="409 when it would leave the group without an admin."),
    ("DELETE", f"{V1}/conversations/{{cid}}/members/{{uid}}"): Operation(
        "Remove a member (admins), or leave (your own user id)",
        {200: (ConversationInfo, EmptyResponse)}, (*_AUTH, 400, 403, 404, *_WRITES),
        description="The conversation as the caller now sees it, or `{}` when the caller"
                    " left. 404 when `uid` is not a member; 400 for a direct conversation."),
    ("GET", f"{V1}/conversations/{{cid}}/messages"): Operation(
        "A page of the conversation's log, ascending seq",
        {200: (HistoryPage, FoldedHistoryPage)}, (*_AUTH, 400, 403),
        query=(
            Query("before", _SEQ_SCHEMA, "only seqs below this one (the latest page below it)"),
            Query("after", _SEQ_SCHEMA, "only seqs above this one (the first page above it)"),
            Query("around", _SEQ_SCHEMA, "the page centred on this seq (e.g. a search hit):"
                  " half of `limit` below it, the rest from it up; not with before or after"),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": HISTORY_MAX_LIMIT,
                            "default": 50}, "most messages in the page"),
            Query("fold", {"type": "boolean", "default": False},
                  "fold edits and reactions into the messages they target"),
        ),
        description="With `fold=true` a FoldedHistoryPage, otherwise a HistoryPage."),
    ("GET", f"{V1}/search"): Operation(
        "Messages you may read that match a query, newest first",
        {200: SearchPage}, (*_AUTH, 400, 403),
        query=(
            Query("q", {"type": "string", "minLength": 1, "maxLength": QUERY_MAX_CHARS},
                  "words (all must match), \"quoted phrases\" and prefix* terms; case and"
                  " accents do not matter"),
            Query("conversation_id", {"type": "string"}, "only this conversation"),
            Query("before", {"type": "integer", "minimum": 1},
                  "the `next_before` of the previous page: only older hits"),
            Query("limit", {"type": "integer", "minimum": 1, "maximum": SEARCH_MAX_LIMIT,
                            "default": SEARCH_DEFAULT_LIMIT}, "most hits in the page"),
        ),
        description="Only messages of conversations you are a member of, written after you"
                    " joined; text and media captions, in their current (edited) text,"
                    " never deleted ones. 400 `invalid` for an empty or over-long query, one"
                    " with nothing to search for, or a bad limit or cursor; 403 for a"
                    " `conversation_id` you are not a member of."),
    ("POST", f"{V1}/conversations/{{cid}}/messages"): Operation(
        "Send a message: the same path as the WebSocket `send` frame",
        {201: Sent, 200: Sent}, (*_AUTH, *_JSON_BODY, 403, 429, *_WRITES), body=SendRequest,
        description="201 for a new message, 200 with the original `sent` for a retry of the"
                    " same `client_msg_id`. 400 `invalid` or `invalid_seq` names the field;"
                    " 413 also answers a body over `body_chars`; 429 past the send rate and 503"
                    " while the store cannot be written, both with nothing stored."),
    ("POST", f"{V1}/media"): Operation(
        "Upload a file: the raw body is the file, its Content-Type is kept",
        {201: MediaInfo}, (*_AUTH, 400, 408, 413, *_WRITES), body=BINARY,
        description="413 past `upload_bytes`; 400 for a Content-Type over 128 characters;"
                    " 408 when the body stops arriving (`body_timeout_s`)."),
    ("GET", f"{V1}/media/{{media_id}}"): Operation(
        "Download a file, to its uploader and to members of a conversation that references it",
        {200: BINARY, 206: BINARY}, (*_AUTH, 404),
        headers={200: _DOWNLOAD_HEADERS, 206: _DOWNLOAD_HEADERS},
        description="Served with the Content-Type it was uploaded with; range requests answer"
                    " 206. Anyone else is told 404, as if it did not exist."),
    ("GET", f"{V1}/schema.json"): Operation(
        "JSON Schema of every frame and REST body", {200: ANY_OBJECT}, auth=False),
    ("GET", f"{V1}/openapi.json"): Operation("This document", {200: ANY_OBJECT}, auth=False),
    ("GET", "/healthz"): Operation(
        "200 when a write to the store commits", {200: HealthStatus, 503: HealthStatus},
        auth=False),
    ("GET", "/metrics"): Operation("Prometheus metrics", {200: TEXT}, auth=False),
}

_ERROR_TEXT = {
    400: "The request is malformed: `bad_frame` (the body is not a JSON object) or `invalid`"
         " (a field or parameter is missing, of the wrong type or out of range; the message"
         " names it).",
    401: "`unauthenticated`: no bearer token, or an unknown, revoked or disabled one.",
    403: "`forbidden` (not a member, not an admin, a disabled account, an invite that cannot be"
         " used) or `registration_closed`.",
    404: "`not_found`: no such user, media, member or invite.",
    409: "`conflict`: the username is taken, the member is already there, the change would"
         " leave a group without an admin, or an admin would disable or demote themselves or"
         " reset their own password.",
    408: "`invalid`: the request body stopped arriving (`body_timeout_s`); the connection is"
         " closed.",
    413: "`too_large`: over a configured limit (request body, message body, upload, group).",
    429: "`rate_limited`: too many requests; nothing was done. Retry after `Retry-After`"
         " seconds.",
    503: "`internal`: the store cannot be written right now; nothing was stored.",
}

_SUCCESS_TEXT = {200: "OK", 201: "Created", 206: "Partial content (a range request)",
                 503: "The store cannot be written"}

_RETRY_AFTER = {"Retry-After": {
    "schema": {"type": "integer", "minimum": 1}, "required": True,
    "description": "seconds to wait before retrying"}}


def _codes_by_status() -> dict[int, list[str]]:
    """The error codes each status carries, from the protocol's own table."""
    codes: dict[int, list[str]] = {}
    for code, status in HTTP_STATUS.items():
        codes.setdefault(status, []).append(code)
    codes[503] = [ErrorCode.INTERNAL]
    codes[408] = [ErrorCode.INVALID]  # a body that stopped arriving (web/paced.py)
    return codes


def _ref(struct: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{struct.__name__}"}


def _content(what: Any) -> dict[str, Any]:
    if what == BINARY:
        return {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    if what == TEXT:
        return {"text/plain": {"schema": {"type": "string"}}}
    if what == ANY_OBJECT:
        return {JSON: {"schema": {"type": "object"}}}
    if isinstance(what, tuple):
        return {JSON: {"schema": {"anyOf": [_ref(s) for s in what]}}}
    return {JSON: {"schema": _ref(what)}}


def _structs() -> list[type]:
    found: list[type] = [ErrorResponse]
    for op in OPERATIONS.values():
        for what in (op.body, *op.answers.values()):
            for struct in what if isinstance(what, tuple) else (what,):
                if isinstance(struct, type) and struct not in found:
                    found.append(struct)
    return found


def _error_responses() -> dict[str, Any]:
    responses = {}
    for status, codes in sorted(_codes_by_status().items()):
        if status not in _ERROR_TEXT:
            continue  # 500 is a bug, never part of the contract
        schema = {"allOf": [_ref(ErrorResponse), {"properties": {"error": {
            "properties": {"code": {"enum": sorted(codes)}}}}}]}
        response: dict[str, Any] = {"description": _ERROR_TEXT[status],
                                    "content": {JSON: {"schema": schema}}}
        if status == 429:
            response["headers"] = _RETRY_AFTER
        responses[f"Error{status}"] = response
    return responses


def _operation(method: str, path: str, op: Operation) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "minLength": 1}}
        for name in re.findall(r"\{(\w+)\}", path)]
    parameters += [{"name": q.name, "in": "query", "required": False, "schema": q.schema,
                    "description": q.description} for q in op.query]
    doc: dict[str, Any] = {
        "operationId": f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', path)}".rstrip("_"),
        "summary": op.summary,
        "security": [{"bearer": []}] if op.auth else [],
        "responses": {},
    }
    if op.description:
        doc["description"] = op.description
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        content = ({"application/octet-stream": {"schema": {"type": "string",
                                                            "format": "binary"}}}
                   if op.body == BINARY else _content(op.body))
        doc["requestBody"] = {"required": op.body == BINARY, "content": content}
    for status, what in sorted(op.answers.items()):
        answer: dict[str, Any] = {"description": _SUCCESS_TEXT[status],
                                  "content": _content(what)}
        if status in op.headers:
            answer["headers"] = op.headers[status]
        doc["responses"][str(status)] = answer
    for status in sorted(set(op.errors)):
        doc["responses"][str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    return doc


def openapi_document() -> dict[str, Any]:
    """The whole document; build it once, it only depends on the code."""
    schemas, components = msgspec.json.schema_components(
        _structs(), ref_template="#/components/schemas/{name}")
    del schemas  # every use goes through a $ref
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in OPERATIONS.items():
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "chatnode REST API", "version": "1",
                 "description": "REST for bots, scripts and the browser app; PROTOCOL.md is"
                                " the contract. Errors are always"
                                " `{\"error\": {\"code\", \"message\"}}`."},
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": _error_responses(),
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "the token of a login: every login is a device"}},
        },
    }
