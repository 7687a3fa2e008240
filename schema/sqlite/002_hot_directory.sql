-- Version 2: the orphan list for unlinked inodes kept alive by open files.
-- (SQLite has one writer, so directory entry changes update the directory
-- row directly; PostgreSQL's dir_deltas has no counterpart here.)
CREATE TABLE orphans (
    ino       INTEGER PRIMARY KEY,
    since_ns  INTEGER NOT NULL
);
