-- What was imported from a Go server's files, so that it is imported once: a Go
-- session by its device (JID and noise key), a chat history by its file and account.
-- Kept across logout, so a logged-out Go session is not imported again.
CREATE TABLE imports (
    key TEXT PRIMARY KEY NOT NULL,
    imported_at INTEGER NOT NULL
);
