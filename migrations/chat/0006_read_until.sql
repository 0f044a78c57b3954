-- How far each chat is read (unix seconds of the newest message read): incoming
-- messages after it are unread. Chats stored before are taken as read so far.
ALTER TABLE chats ADD COLUMN read_until INTEGER NOT NULL DEFAULT 0;
UPDATE chats SET read_until = last_message_at;
