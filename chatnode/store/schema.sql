-- chatnode schema, version 1. Later versions are migrations in sqlite.py (PRAGMA user_version).

CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,          -- stored lower-case
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    last_seen     INTEGER
);

-- One row per login. Only a hash of the token is kept.
CREATE TABLE devices (
    device_id   TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (user_id),
    token_hash  BLOB NOT NULL UNIQUE,
    name        TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE conversations (
    conversation_id TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    name            TEXT,
    direct_key      TEXT UNIQUE,                 -- "a|b" for the pair of a direct conversation
    last_seq        INTEGER NOT NULL DEFAULT 0,
    last_activity   INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);

-- Membership and the whole tick state: two cumulative integers per member.
CREATE TABLE members (
    conversation_id    TEXT NOT NULL REFERENCES conversations (conversation_id),
    user_id            TEXT NOT NULL REFERENCES users (user_id),
    role               TEXT NOT NULL DEFAULT 'member',
    joined_seq         INTEGER NOT NULL DEFAULT 0,
    last_delivered_seq INTEGER NOT NULL DEFAULT 0,
    last_read_seq      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members (user_id);

-- The log. seq is per conversation, 1, 2, 3, ... with no gaps.
CREATE TABLE messages (
    conversation_id TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    sender_id       TEXT NOT NULL,
    client_msg_id   TEXT NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL,
    ts              INTEGER NOT NULL,
    media_id        TEXT,
    reply_to        INTEGER,
    target          INTEGER,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (sender_id, client_msg_id)
);
-- Reactions, edits and deletes by the message they target.
CREATE INDEX messages_by_target ON messages (conversation_id, target) WHERE target IS NOT NULL;

CREATE INDEX messages_by_media ON messages (media_id) WHERE media_id IS NOT NULL;

-- Uploads. The bytes live under <data_dir>/media/, named by their SHA-256, so two uploads of
-- the same file share one copy; media_id is random so it reveals nothing about the content.
CREATE TABLE media (
    media_id     TEXT PRIMARY KEY,
    sha256       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    uploader_id  TEXT NOT NULL REFERENCES users (user_id),
    created_at   INTEGER NOT NULL,
    referenced   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX media_unreferenced ON media (created_at) WHERE referenced = 0;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
