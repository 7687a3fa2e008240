-- Version 9: the inline bytes of deleted inodes, released in batches
-- (docs/schema.md, "inode_data_gone"). SQLite lists deleted inodes here
-- and deletes their inode_data rows in sorted batches. PostgreSQL deletes
-- the row with the inode, as before: a DELETE only marks the tuple dead
-- and VACUUM reclaims the space later, already in batches. The table is
-- here so that both dialects have the same tables (fsck reads it).
CREATE TABLE inode_data_gone (
    ino  BIGINT PRIMARY KEY
);
