"""One typed configuration: defaults < config.toml < CHATNODE_* environment < command-line flags.

Every setting is documented in config.example.toml. Environment names are the setting's path in
upper case: `port` is CHATNODE_PORT, `[limits] frame_bytes` is CHATNODE_LIMITS_FRAME_BYTES,
`[push] allow_http` is CHATNODE_PUSH_ALLOW_HTTP, `[store] url` is CHATNODE_STORE_URL.
"""

from __future__ import annotations

import os
import re
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


class Store(Struct, forbid_unknown_fields=True):
    # None: SQLite in data_dir, as a single node has always run. A postgresql:// (or
    # postgres://) URL: the shared store of a cluster (`pip install chatnode[cluster]`).
    url: str | None = None
    # Connections each node keeps open to PostgreSQL (read now, used once cluster serving is
    # complete); unused by SQLite.
    pool_size: PositiveInt = 10
    # Where uploads are kept. None: DATA_DIR/media. Several nodes on one PostgreSQL store name
    # one directory they all mount (NFS, CephFS, ...), so each serves what another received.
    media_dir: str | None = None


class Bus(Struct, forbid_unknown_fields=True):
    # redis:// or rediss://: how the nodes of a cluster tell each other what was committed.
    url: str | None = None
    # Every key and channel name starts with this, so clusters can share one Redis.
    prefix: str = "chatnode"


class Cluster(Struct, forbid_unknown_fields=True):
    # A node that stops refreshing its presence entries is taken as gone after this long.
    presence_ttl_s: PositiveInt = 60


class Config(Struct, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8420
    data_dir: str = "./chatnode-data"
    # "invite": people register with an invite an admin made (`chatnode invite create`);
    # "closed": accounts are made only with `chatnode user add`; "open": anyone may register.
    registration: Literal["closed", "invite", "open"] = "invite"
    # The address people open the node at (https://chat.example.org, behind a proxy): invite
    # links start with it. None: the CLI uses http://HOST:PORT, REST the request's own address.
    public_url: str | None = None
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
    store: Store = msgspec.field(default_factory=Store)
    bus: Bus = msgspec.field(default_factory=Bus)
    cluster: Cluster = msgspec.field(default_factory=Cluster)


# The [sections] of the file, each read from CHATNODE_<SECTION>_<FIELD> in the environment.
_SECTIONS: dict[str, type[Struct]] = {
    "limits": Limits, "push": Push, "store": Store, "bus": Bus, "cluster": Cluster,
}
STORE_SCHEMES = ("postgresql", "postgres")
BUS_SCHEMES = ("redis", "rediss")


class ConfigError(Exception):
    pass


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name in Config.__struct_fields__:
        if name in _SECTIONS:
            for field in _SECTIONS[name].__struct_fields__:
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
        config = msgspec.convert(layers, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None
    if config.public_url is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?",
                                                          config.public_url):
        raise ConfigError("invalid configuration: public_url must be an http:// or https://"
                          " URL without a query or fragment, like https://chat.example.org")
    _check_scheme("[store] url", config.store.url, STORE_SCHEMES)
    _check_scheme("[bus] url", config.bus.url, BUS_SCHEMES)
    return config


def _check_scheme(setting: str, url: str | None, schemes: tuple[str, ...]) -> None:
    """Refuse a URL of the wrong kind at once, naming only its scheme: the rest may hold a
    password, and this message goes to the terminal and the logs."""
    if url is None:
        return
    # As written, not lower-cased: libpq reads only a lower-case postgresql:// as a URL.
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        scheme = ""  # not a scheme at all, and possibly a secret
    if scheme not in schemes:
        expected = " or ".join(f"{s}://" for s in schemes)
        got = f"a {scheme}:// URL" if scheme else "no URL scheme"
        raise ConfigError(f"invalid configuration: {setting} must be a {expected} URL,"
                          f" got {got}")
