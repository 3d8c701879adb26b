-- Candidates not released, by reason.
SELECT reason, count(*) AS samples FROM release_exclusions GROUP BY ALL ORDER BY samples DESC, reason
