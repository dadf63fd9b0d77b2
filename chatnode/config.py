"""One typed configuration: defaults < config.toml < CHATNODE_* environment < command-line flags.

Every setting is documented in config.example.toml. Environment names are the setting's path in
upper case: `port` is CHATNODE_PORT, `[limits] frame_bytes` is CHATNODE_LIMITS_FRAME_BYTES,
`[push] allow_http` is CHATNODE_PUSH_ALLOW_HTTP.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

PositiveInt = Annotated[int, Meta(ge=1)]


class Limits(Struct, forbid_unknown_fields=True):
    frame_bytes: PositiveInt = 64 * 1024
    body_chars: PositiveInt = 10_000
    upload_bytes: PositiveInt = 16 * 1024 * 1024
    group_members: Annotated[int, Meta(ge=2)] = 256
    send_per_second: Annotated[float, Meta(ge=0)] = 20
    send_burst: PositiveInt = 50
    login_per_minute: Annotated[float, Meta(ge=0)] = 10
    # Deadlines for connections that hold a socket without doing their part (slowloris).
    header_timeout_s: PositiveInt = 10
    body_timeout_s: PositiveInt = 30
    hello_timeout_s: PositiveInt = 10
    unread_timeout_s: PositiveInt = 60


class Push(Struct, forbid_unknown_fields=True):
    enabled: bool = True
    # Who runs this node, for push services to reach (the VAPID `sub` claim of RFC 8292).
    contact: str = "mailto:admin@chatnode.invalid"
    # Messages to one device in one conversation within this window make one notification.
    coalesce_ms: Annotated[int, Meta(ge=0, le=60_000)] = 1500
    # Notifications waiting or being sent at once; past this new ones are dropped (counted).
    queue: PositiveInt = 2000
    # Requests to push services at once.
    concurrency: PositiveInt = 8
    timeout_s: Annotated[float, Meta(gt=0, le=120)] = 10
    # Attempts per notification on a timeout, 429 or 5xx, with backoff between them.
    attempts: Annotated[int, Meta(ge=1, le=10)] = 4
    # How long a push service keeps a notification for a device that is off (the TTL header).
    ttl_s: Annotated[int, Meta(ge=0)] = 86_400
    # Plain http:// endpoints, for an ntfy or UnifiedPush server on your own network.
    allow_http: bool = False
    # Endpoints on loopback, private or link-local addresses (your own ntfy server at home).
    # Off, the node refuses them, so that no user can make it POST to services inside your
    # network (checked at registration and again, after DNS, before every request).
    allow_private: bool = False


class Config(Struct, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8420
    data_dir: str = "./chatnode-data"
    # "closed": accounts are made with `chatnode user add`; "open": anyone may register.
    registration: Literal["open", "closed"] = "closed"
    # "full" fsyncs every commit (survives power loss); "normal" survives a crash of the
    # process but may lose the last commits on power loss.
    durability: Literal["full", "normal"] = "full"
    heartbeat_s: PositiveInt = 30
    history_on_new_device: Annotated[int, Meta(ge=0)] = 50
    outbox_frames: PositiveInt = 4096
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # "text": one line per event for people; "json": one JSON object per line for machines.
    log_format: Literal["text", "json"] = "text"
    # How many reverse proxies in front of the node add to X-Forwarded-For: the client address
    # (login limits, logs) is taken from there instead of the TCP peer. 0: clients connect
    # directly, and the header, which anyone can send, is ignored.
    proxy_hops: Annotated[int, Meta(ge=0, le=10)] = 0
    limits: Limits = msgspec.field(default_factory=Limits)
    push: Push = msgspec.field(default_factory=Push)


class ConfigError(Exception):
    pass


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    sections: dict[str, type[Struct]] = {"limits": Limits, "push": Push}
    for name in Config.__struct_fields__:
        if name in sections:
            for field in sections[name].__struct_fields__:
                value = environ.get(f"CHATNODE_{name.upper()}_{field.upper()}")
                if value is not None:
                    overrides.setdefault(name, {})[field] = value
            continue
        value = environ.get(f"CHATNODE_{name.upper()}")
        if value is not None:
            overrides[name] = value
    return overrides


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None,
                **flags: Any) -> Config:
    """Build the config from its four layers; flags that are None are not given."""
    layers: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                layers = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
    layers = _merge(layers, _env_overrides(os.environ if environ is None else environ))
    layers = _merge(layers, {k: v for k, v in flags.items() if v is not None})
    try:
        return msgspec.convert(layers, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None
