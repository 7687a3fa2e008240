-- Version 3: NFSv4 ACLs, extended attributes, directory tags, checksums and
-- storage locations. See docs/schema.md ("metadata") for every column and
-- why. Every table is keyed by inode first, so DeleteInode removes an
-- inode's rows with one index range each. An inode that has an ACL carries
-- bit 0x10000 in inodes.mode, so access checks on inodes without one never
-- probe aces.
CREATE TABLE aces (
    ino       INTEGER NOT NULL,
    pos       INTEGER NOT NULL,
    type      INTEGER NOT NULL,
    flags     INTEGER NOT NULL,
    mask      INTEGER NOT NULL,
    who_kind  INTEGER NOT NULL,
    who_id    INTEGER NOT NULL,
    PRIMARY KEY (ino, pos)
) WITHOUT ROWID;

CREATE TABLE xattrs (
    ino    INTEGER NOT NULL,
    name   TEXT    NOT NULL,
    value  BLOB    NOT NULL,
    PRIMARY KEY (ino, name)
) WITHOUT ROWID;

-- Directory tags, copy-on-write: dir_tags says whose tag set a directory
-- sees; tags holds the sets, keyed by the inode that made them (origin).
CREATE TABLE dir_tags (
    ino     INTEGER PRIMARY KEY,
    origin  INTEGER NOT NULL
);
CREATE INDEX dir_tags_origin ON dir_tags (origin);
CREATE TABLE tags (
    origin  INTEGER NOT NULL,
    name    TEXT    NOT NULL,
    value   BLOB    NOT NULL,
    PRIMARY KEY (origin, name)
) WITHOUT ROWID;

CREATE TABLE checksums (
    ino    INTEGER NOT NULL,
    type   INTEGER NOT NULL,
    value  TEXT    NOT NULL,
    PRIMARY KEY (ino, type)
) WITHOUT ROWID;

CREATE TABLE locations (
    ino       INTEGER NOT NULL,
    type      INTEGER NOT NULL,
    location  TEXT    NOT NULL,
    added_ns  INTEGER NOT NULL,
    PRIMARY KEY (ino, type, location)
) WITHOUT ROWID;
