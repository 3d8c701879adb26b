-- Per-shard facts about raw_shards: sample counts by status, duplicate keys and duplicate copies in the tar.
SELECT
    count(*)                                           AS samples,
    count(*) FILTER (WHERE status = 'ok')              AS ok,
    count(*) FILTER (WHERE status = 'failed_to_download') AS failed_to_download,
    count(*) FILTER (WHERE status = 'invalid')         AS invalid,
    count(*) - count(DISTINCT key)                     AS duplicate_keys,
    count(*) FILTER (WHERE error = 'duplicate_key')    AS duplicate_copies,
    count(*) FILTER (WHERE notes IS NOT NULL)          AS repaired
FROM read_parquet($path)
