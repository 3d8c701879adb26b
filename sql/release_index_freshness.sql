-- Candidates of every published shard ($candidates) against the release index ($index): a
-- candidate the index lacks, an index entry whose candidate is gone, or one whose image changed.
WITH c AS (SELECT shard, key, sha256, phash FROM read_parquet($candidates)),
i AS (SELECT shard, key, sha256, phash FROM read_parquet($index))
SELECT coalesce(c.shard, i.shard) AS shard, count(*) AS differing
FROM c FULL JOIN i ON c.shard = i.shard AND c.key = i.key
WHERE c.key IS NULL OR i.key IS NULL OR c.sha256 IS DISTINCT FROM i.sha256 OR c.phash IS DISTINCT FROM i.phash
GROUP BY ALL
ORDER BY shard
