-- Facts of one shard's release index entries ($path) among every shard's ($index, this one's
-- included): its keys that another shard also has, and keys it holds twice.
WITH e AS (SELECT key FROM read_parquet($path)),
o AS (SELECT DISTINCT key FROM read_parquet($index) WHERE shard <> $shard AND key IN (SELECT key FROM e))
SELECT
    (SELECT count(*) FROM e)                                  AS candidates,
    (SELECT count(*) FROM o)                                  AS keys_in_several_shards,
    (SELECT coalesce(list(key ORDER BY key), []) FROM o)      AS keys_in_several_shards_list,
    (SELECT count(*) - count(DISTINCT key) FROM e)            AS duplicate_entries
