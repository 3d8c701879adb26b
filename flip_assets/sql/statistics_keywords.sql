-- How many released samples carry each face keyword, and their share of the release.
SELECT keyword, count(*) AS samples, count(*) / (SELECT count(*) FROM flip_release) AS share
FROM (SELECT unnest(list_distinct(KEYWORDS)) AS keyword FROM flip_release)
GROUP BY keyword
ORDER BY samples DESC, keyword
