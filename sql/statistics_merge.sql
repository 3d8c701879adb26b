-- The merge of the per-shard partial aggregates (release_statistics_partial): counts and sums
-- added over the shards counted ($shards), by statistic and value. Per-shard rows (the funnel,
-- inputs, problems, labelled samples: a detail or a funnel count) are read as they are.
SELECT statistic, value, sum(n) AS n, sum(total) AS total
FROM partials
WHERE shard IN (SELECT unnest($shards)) AND detail IS NULL AND NOT starts_with(statistic, 'funnel.')
GROUP BY statistic, value
