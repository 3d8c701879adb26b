-- Excluded candidates per reason ($path: release_exclusions files).
SELECT reason, count(*) AS samples FROM read_parquet($path) GROUP BY reason ORDER BY samples DESC, reason
