-- Facts of the AIGC release ($path) against the released samples of every shard ($release: files).
WITH a AS (SELECT * FROM read_parquet($path)),
r AS (SELECT key FROM read_parquet($release))
SELECT
    (SELECT count(*) FROM a ANTI JOIN r ON a.source_key = r.key) AS without_source,
    (SELECT count(*) - count(DISTINCT key) FROM a)                AS duplicate_keys,
    (SELECT count(*) FROM a WHERE image IS NULL)                  AS without_image
