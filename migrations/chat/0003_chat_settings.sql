-- Chat history listings and the chat settings WhatsApp syncs (pin, archive,
-- disappearing timer); messages found by id alone (forwards).
ALTER TABLE chats ADD COLUMN created_at INTEGER;
ALTER TABLE chats ADD COLUMN updated_at INTEGER;
ALTER TABLE chats ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chats ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chats ADD COLUMN ephemeral_expiration INTEGER NOT NULL DEFAULT 0;
-- Kept with every insert and delete: a chat's total without counting its messages.
ALTER TABLE chats ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
UPDATE chats SET message_count =
    (SELECT COUNT(*) FROM messages WHERE messages.chat_jid = chats.jid);

CREATE INDEX chats_by_last_message ON chats(last_message_at);
CREATE INDEX messages_by_id ON messages(id);
