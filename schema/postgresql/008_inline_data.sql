-- Version 8: the bytes of small regular files in the database
-- (docs/schema.md, "inode_data"). nfs41d keeps a file up to its
-- `inline_max` bytes here, written in the same transaction as the file's
-- size and mtime, so a small FILE_SYNC write costs one group commit and no
-- data-file fsync. A row exists only while the bytes live here; a file
-- without one keeps its bytes in a data store. Bytes past the row's length
-- up to inodes.size read as zeros. A table of its own, not a column of
-- inodes, so that the hot inode rows stay small for lookups and readdir.
CREATE TABLE inode_data (
    ino    bigint PRIMARY KEY,
    bytes  bytea  NOT NULL
);
-- MAIN: compressed if that helps, but kept in the heap page rather than
-- moved to TOAST (a second index probe per read) while the row fits; a
-- file of a few KiB fits.
ALTER TABLE inode_data ALTER COLUMN bytes SET STORAGE MAIN;
