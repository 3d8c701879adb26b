-- Per shard: released samples by NSFW tag (LAION's value set).
SELECT file_shard AS shard, histogram(NSFW) AS nsfw FROM flip_release GROUP BY file_shard
