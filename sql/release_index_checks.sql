-- Facts of the release index ($path): keys in more than one shard, (shard, key) twice, verdicts.
WITH i AS (SELECT * FROM read_parquet($path))
SELECT
    (SELECT count(*) FROM i)                                                          AS candidates,
    (SELECT count(DISTINCT shard) FROM i)                                             AS shards,
    (SELECT count(*) FROM (SELECT key FROM i GROUP BY key HAVING count(DISTINCT shard) > 1)) AS keys_in_several_shards,
    (SELECT coalesce(list(key ORDER BY key), []) FROM (SELECT key FROM i GROUP BY key HAVING count(DISTINCT shard) > 1)) AS keys_in_several_shards_list,
    (SELECT count(*) - count(DISTINCT (shard, key)) FROM i)                          AS duplicate_entries,
    (SELECT count(*) FROM i WHERE status = 'kept')                                   AS kept,
    (SELECT count(*) FROM i WHERE status = 'duplicate_sha256')                       AS duplicate_sha256,
    (SELECT count(*) FROM i WHERE status = 'near_duplicate')                         AS near_duplicate,
    (SELECT count(*) FROM i WHERE status = 'near_duplicate' AND duplicate_of_shard <> shard) +
    (SELECT count(*) FROM i WHERE status = 'duplicate_sha256' AND duplicate_of_shard <> shard) AS cross_shard_duplicates
