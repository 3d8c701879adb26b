-- The released samples of every shard ($release) with where their image lies in the shards ($raw).
SELECT r.key, r.TEXT AS caption, s.tar_path, s.image_offset, s.image_size, s.image_sha256
FROM read_parquet($release) r LEFT JOIN read_parquet($raw) s USING (key)
ORDER BY r.key
