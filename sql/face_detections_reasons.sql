-- How many samples of a shard were kept, and why the others were dropped.
SELECT coalesce(drop_reason, 'kept') AS outcome, count(*) AS samples
FROM read_parquet($path)
GROUP BY ALL
ORDER BY samples DESC, outcome
