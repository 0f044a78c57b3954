-- An account's own API key (POST /devices with api_key, POST /devices/:id/api-key):
-- the SHA-256 of the key, lower-case hex; NULL when it has none. The key itself is
-- shown once and never stored.
ALTER TABLE accounts ADD COLUMN api_key_sha256 TEXT;
CREATE UNIQUE INDEX accounts_by_api_key ON accounts(api_key_sha256);
