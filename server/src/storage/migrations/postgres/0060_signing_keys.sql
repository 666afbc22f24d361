-- The server's access-token signing keys (Ed25519): each row a key id, the
-- public key (base64url, 32 bytes; published at /api/auth/keys) and the
-- private key sealed with ChaCha20-Poly1305 under a key derived from the
-- server secret (a database dump alone cannot sign tokens). The newest key
-- not retired signs; retired keys still verify the tokens they signed until
-- the retention passes; a withdrawn key verifies nothing.
CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY NOT NULL,
    public_key      TEXT NOT NULL,
    sealed_private  TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    retired_at      BIGINT,
    withdrawn_at    BIGINT
);
