-- Per shard: candidates not released, by reason.
SELECT file_shard AS shard, histogram(reason) AS reasons FROM release_exclusions GROUP BY file_shard
