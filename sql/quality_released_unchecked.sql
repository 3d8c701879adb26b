-- Per shard: released pairs without a verdict by looking ($keys: those with one), their number
-- and the first few (the merge keeps the first 20 over all shards).
SELECT file_shard AS shard, count(*) AS unchecked, list(key ORDER BY key)[1:20] AS examples
FROM flip_release
WHERE key NOT IN (SELECT unnest($keys))
GROUP BY file_shard
