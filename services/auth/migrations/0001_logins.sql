-- The logins read model, written only by the `auth-logins` projection: who
-- can log in under which address. Password hashes are not kept here; a
-- login verifies against the credentials aggregate itself.
CREATE TABLE logins (
    user_id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    email_normalised TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Logins by email. Not unique: the bootstrap admin's address is not claimed
-- in the user service, so a customer may share it (each login verifies its
-- password against every holder).
CREATE INDEX logins_by_email ON logins (email_normalised);
