-- Per shard: how many released samples carry each face keyword (the merge divides by the
-- released samples for the share). KEYWORDS holds each keyword once (KeywordMatcher.find), so
-- unnesting counts samples.
SELECT file_shard AS shard, histogram(keyword) AS keywords
FROM (SELECT file_shard, unnest(KEYWORDS) AS keyword FROM flip_release)
GROUP BY file_shard
