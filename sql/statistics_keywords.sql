-- How many released samples carry each face keyword, and their share of the release. KEYWORDS
-- holds each keyword once (KeywordMatcher.find), so unnesting counts samples.
SELECT keyword, count(*) AS samples, count(*) / (SELECT count(*) FROM flip_release) AS share
FROM (SELECT unnest(KEYWORDS) AS keyword FROM flip_release)
GROUP BY keyword
ORDER BY samples DESC, keyword
