-- Every raw caption of the shards given (a learning sample), with the visual filter's verdict on its sample.
SELECT r.key, r.caption, coalesce(d.kept, false) AS face_kept, d.drop_reason AS face_drop_reason
FROM read_parquet($raw_files) r
LEFT JOIN read_parquet($detections_files) d USING (key)
WHERE r.caption IS NOT NULL
ORDER BY r.key
