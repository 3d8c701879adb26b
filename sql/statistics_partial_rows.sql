-- The per-shard rows of the partial aggregates, as they are: the funnel counts, the files read,
-- their problems and the labelled samples ($shards: the shards counted).
SELECT shard, statistic, value, n, total, detail
FROM partials
WHERE shard IN (SELECT unnest($shards)) AND (detail IS NOT NULL OR starts_with(statistic, 'funnel.'))
ORDER BY shard, statistic, value
