-- Chat history listings and the chat settings WhatsApp syncs (pin, archive,
-- disappearing timer); messages found by id alone (forwards).
ALTER TABLE chats ADD COLUMN created_at INTEGER;
ALTER TABLE chats ADD COLUMN updated_at INTEGER;
ALTER TABLE chats ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chats ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chats ADD COLUMN ephemeral_expiration INTEGER NOT NULL DEFAULT 0;

CREATE INDEX chats_by_last_message ON chats(last_message_at);
CREATE INDEX messages_by_id ON messages(id);
