-- One-time steps the server runs when it starts, after the migrations,
-- because they need sync-core to read documents (SQL cannot): each is
-- recorded here once done, so no node runs it twice. The first re-projects
-- who may read every stored petition: a petition holding personal data (a
-- contact number, an anonymous writer) became a private document.
CREATE TABLE load_steps (
    name TEXT PRIMARY KEY,
    done_at BIGINT NOT NULL
);
