-- Released samples by NSFW tag (LAION's value set).
SELECT NSFW AS nsfw, count(*) AS samples FROM flip_release GROUP BY ALL ORDER BY samples DESC, nsfw
