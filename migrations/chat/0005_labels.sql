-- Labels (WhatsApp Business chat labels, synced between devices): their names and
-- colours, and which chats carry them. A chat's labels outlive its messages.
CREATE TABLE labels (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    color INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);
CREATE TABLE chat_labels (
    chat_jid TEXT NOT NULL,
    label_id TEXT NOT NULL,
    PRIMARY KEY (chat_jid, label_id)
) WITHOUT ROWID;
CREATE INDEX chat_labels_by_label ON chat_labels(label_id);
