-- Kept face-text pairs of every shard, with where their image lies in the shard tar.
SELECT p.key, p.caption, r.tar_path, r.image_offset, r.image_size, r.image_sha256
FROM read_parquet($pairs) p
JOIN read_parquet($raw) r USING (key)
WHERE p.kept
ORDER BY p.key
