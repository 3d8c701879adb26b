-- The samples of a shard the visual filter kept, with their caption and size.
SELECT r.key, r.url, r.caption, r.width, r.height
FROM read_parquet($raw_path) r
JOIN read_parquet($detections_path) d USING (key)
WHERE d.kept
ORDER BY r.key
