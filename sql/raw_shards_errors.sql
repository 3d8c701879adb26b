-- Why samples of a shard are not usable, most frequent first.
SELECT coalesce(error, 'ok') AS reason, count(*) AS samples
FROM read_parquet($path)
GROUP BY ALL
ORDER BY samples DESC, reason
