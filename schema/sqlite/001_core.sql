-- Version 1: the core namespace. See docs/schema.md for every column and why.
-- The migration runner adds the row for each version it applies.
CREATE TABLE schema_version (
    version     INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    applied_ns  INTEGER NOT NULL
);

CREATE TABLE fs_info (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    fsid        TEXT    NOT NULL,
    verifier    INTEGER NOT NULL,
    created_ns  INTEGER NOT NULL
);
INSERT INTO fs_info (id, fsid, verifier, created_ns)
VALUES (1, lower(hex(randomblob(16))), random(),
        CAST((julianday('now') - 2440587.5) * 86400000000000 AS INTEGER));

-- AUTOINCREMENT: inode numbers are never reused, even after the highest is
-- deleted (an NFS filehandle must never name a different file).
CREATE TABLE inodes (
    ino         INTEGER PRIMARY KEY AUTOINCREMENT,
    ext_id      TEXT,
    type        INTEGER NOT NULL,
    mode        INTEGER NOT NULL,
    nlink       INTEGER NOT NULL,
    uid         INTEGER NOT NULL,
    gid         INTEGER NOT NULL,
    size        INTEGER NOT NULL DEFAULT 0,
    rdev_major  INTEGER NOT NULL DEFAULT 0,
    rdev_minor  INTEGER NOT NULL DEFAULT 0,
    atime_ns    INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    ctime_ns    INTEGER NOT NULL,
    btime_ns    INTEGER NOT NULL,
    change      INTEGER NOT NULL DEFAULT 1,
    generation  INTEGER NOT NULL DEFAULT 0,
    parent      INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX inodes_ext_id ON inodes (ext_id) WHERE ext_id IS NOT NULL;

INSERT INTO inodes (ino, type, mode, nlink, uid, gid, atime_ns, mtime_ns, ctime_ns, btime_ns, parent)
SELECT 1, 2, 493, 2, 0, 0, created_ns, created_ns, created_ns, created_ns, 1 FROM fs_info;

-- The rowid is the readdir cookie: AUTOINCREMENT hands out ever larger
-- values, starting at 3 (NFSv4 reserves 0, 1 and 2).
CREATE TABLE dirents (
    cookie  INTEGER PRIMARY KEY AUTOINCREMENT,
    parent  INTEGER NOT NULL,
    name    TEXT    NOT NULL,
    child   INTEGER NOT NULL,
    type    INTEGER NOT NULL
);
INSERT INTO sqlite_sequence (name, seq) VALUES ('dirents', 2);
CREATE UNIQUE INDEX dirents_parent_name ON dirents (parent, name);
CREATE INDEX dirents_parent_cookie ON dirents (parent, cookie);

CREATE TABLE symlinks (
    ino     INTEGER PRIMARY KEY,
    target  TEXT    NOT NULL
);
