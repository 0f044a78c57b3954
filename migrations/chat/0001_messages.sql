-- The message store: every message in and out, what happened to it afterwards
-- (reactions, edits, deletion for everyone) and the receipts it got.
CREATE TABLE chats (
    jid             TEXT    PRIMARY KEY,
    -- The contact's push name or the group's subject, when known.
    name            TEXT,
    last_message_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE messages (
    chat_jid        TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    sender          TEXT    NOT NULL,
    sender_lid      TEXT,
    push_name       TEXT,
    -- Unix seconds.
    timestamp       INTEGER NOT NULL,
    is_from_me      INTEGER NOT NULL,
    -- text, image, video, video_note, audio, document, sticker, contact, location, other
    kind            TEXT    NOT NULL,
    -- The text, or the media's caption.
    body            TEXT,
    quoted_id       TEXT,
    -- Media: what a later download or forward needs.
    mimetype        TEXT,
    file_name       TEXT,
    url             TEXT,
    direct_path     TEXT,
    media_key       BLOB,
    file_sha256     BLOB,
    file_enc_sha256 BLOB,
    file_length     INTEGER,
    -- The WhatsApp message itself (protobuf), for quoting and forwarding.
    raw             BLOB,
    edited_at       INTEGER,
    -- Deleted for everyone: content, media keys and raw message are cleared.
    revoked_at      INTEGER,
    stored_at       INTEGER NOT NULL,
    PRIMARY KEY (chat_jid, id)
) WITHOUT ROWID;

CREATE INDEX messages_by_chat_time ON messages(chat_jid, timestamp);
CREATE INDEX messages_by_time ON messages(timestamp);

CREATE TABLE reactions (
    chat_jid   TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    sender     TEXT    NOT NULL,
    emoji      TEXT    NOT NULL,
    timestamp  INTEGER NOT NULL,
    PRIMARY KEY (chat_jid, message_id, sender)
) WITHOUT ROWID;

-- Every edit (the message row holds the latest text), by the edit's own id.
CREATE TABLE edits (
    chat_jid   TEXT    NOT NULL,
    edit_id    TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    edited_at  INTEGER NOT NULL,
    PRIMARY KEY (chat_jid, edit_id)
) WITHOUT ROWID;

CREATE INDEX edits_by_message ON edits(chat_jid, message_id);

CREATE TABLE receipts (
    chat_jid   TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    -- delivered, read, played, …
    kind       TEXT    NOT NULL,
    sender     TEXT    NOT NULL,
    timestamp  INTEGER NOT NULL,
    PRIMARY KEY (chat_jid, message_id, kind, sender)
) WITHOUT ROWID;
