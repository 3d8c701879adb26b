-- What each partial was taken from ($statistics: 'input' rows name a stage file and its footer
-- fingerprint; 'labels' and 'keywords' the label files' and face keywords' fingerprints), to
-- tell a stale partial.
SELECT shard, statistic, value, detail FROM partials WHERE statistic IN (SELECT unnest($statistics))
