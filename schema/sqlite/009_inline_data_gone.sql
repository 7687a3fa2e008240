-- Version 9: the inline bytes of deleted inodes, released in batches
-- (docs/schema.md, "inode_data_gone"). Deleting an inode lists it here
-- instead of deleting its inode_data row at once; once enough are listed,
-- one statement deletes their rows in inode order. A row of inode_data is
-- about a page (mdtest-hard's 3,901 bytes fill a 4 KiB one), so deleting
-- one alone rebalances the B-tree and rewrites its neighbours; a sorted
-- batch frees runs of whole pages, which are then never written again.
CREATE TABLE inode_data_gone (
    ino  INTEGER PRIMARY KEY
);
