-- Released samples with faces, and where raw_shards found their image in the tar.
SELECT r.key, r.shard, r.face_boxes, s.tar_path, s.image_offset, s.image_size, s.image_sha256
FROM read_parquet($release_path) r
LEFT JOIN read_parquet($raw_path) s USING (key)
WHERE len(r.face_boxes) > 0
ORDER BY r.key
