-- chatnode's PostgreSQL schema, version 2: the same tables as SQLite's schema.sql with its
-- migration 2 (push targets, push_preview), so that both stores hold the same data and the
-- numbers of later versions stay in step. Later versions are migrations in postgres.py.
--
-- Types follow SQLite's: times are milliseconds since the epoch (BIGINT), seqs are BIGINT,
-- flags SQLite keeps as 0/1 are BOOLEAN here.

CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,          -- stored lower-case
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
    last_seen     BIGINT,
    push_preview  TEXT NOT NULL DEFAULT 'full'
);

-- One row per login. Only a hash of the token is kept.
CREATE TABLE devices (
    device_id   TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (user_id),
    token_hash  BYTEA NOT NULL UNIQUE,
    name        TEXT,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE conversations (
    conversation_id TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    name            TEXT,
    direct_key      TEXT UNIQUE,                 -- "a|b" for the pair of a direct conversation
    last_seq        BIGINT NOT NULL DEFAULT 0,
    last_activity   BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);

-- Membership and the whole tick state: two cumulative integers per member.
CREATE TABLE members (
    conversation_id    TEXT NOT NULL REFERENCES conversations (conversation_id),
    user_id            TEXT NOT NULL REFERENCES users (user_id),
    role               TEXT NOT NULL DEFAULT 'member',
    joined_seq         BIGINT NOT NULL DEFAULT 0,
    last_delivered_seq BIGINT NOT NULL DEFAULT 0,
    last_read_seq      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id);

-- The log. seq is per conversation, 1, 2, 3, ... with no gaps.
CREATE TABLE messages (
    conversation_id TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    sender_id       TEXT NOT NULL,
    client_msg_id   TEXT NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL,
    ts              BIGINT NOT NULL,
    media_id        TEXT,
    reply_to        BIGINT,
    target          BIGINT,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (sender_id, client_msg_id)
);
-- Reactions, edits and deletes by the message they target.
CREATE INDEX messages_by_target ON messages (conversation_id, target) WHERE target IS NOT NULL;

CREATE INDEX messages_by_media ON messages (media_id) WHERE media_id IS NOT NULL;

-- Uploads, by their SHA-256 (where a cluster keeps the bytes is not settled yet: see README,
-- "Outgrowing one machine"); media_id is random so it reveals nothing about the content.
CREATE TABLE media (
    media_id     TEXT PRIMARY KEY,
    sha256       TEXT NOT NULL,
    size         BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    uploader_id  TEXT NOT NULL REFERENCES users (user_id),
    created_at   BIGINT NOT NULL,
    referenced   BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX media_unreferenced ON media (created_at) WHERE NOT referenced;

-- Where to wake each device (one push target per device).
CREATE TABLE push_targets (
    device_id  TEXT PRIMARY KEY REFERENCES devices (device_id),
    user_id    TEXT NOT NULL REFERENCES users (user_id),
    kind       TEXT NOT NULL CHECK (kind IN ('webpush', 'unifiedpush', 'ntfy')),
    endpoint   TEXT NOT NULL,
    p256dh     TEXT,                             -- webpush: the browser's key and secret
    auth       TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX push_targets_by_user ON push_targets (user_id);

-- The schema's version is the row ('schema_version', N).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
