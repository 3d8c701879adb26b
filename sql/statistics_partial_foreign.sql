-- Partial files holding rows of another shard than the one they are named for (left out of the
-- merge, and named).
SELECT file_shard, list(DISTINCT shard ORDER BY shard) AS shards FROM partial_files WHERE shard <> file_shard GROUP BY file_shard
