-- Version 6: commit tokens (PostgreSQL only). The PostgreSQL dialect adds a
-- table through which a write that lost its COMMIT's answer learns whether
-- it committed (docs/dba.md, "Replicas"). SQLite commits in-process on a
-- local file, so a commit's outcome is never unknown: nothing to add; the
-- version exists so both dialects keep the same numbers.
SELECT 1;
