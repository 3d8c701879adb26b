-- The release candidates of a shard: the face-text pairs the denoiser gave a caption (outcome llm
-- or fallback), with what the release takes from every stage. A candidate missing from an
-- upstream file keeps its row, with the file named in missing_from.
SELECT d.key, r.url, d.denoised AS text, d.caption AS original_caption, d.outcome AS denoise_outcome,
       p.text_score, f.image_width AS width, f.image_height AS height, f.face_count,
       f.best_score AS face_score, f.faces, r.sha256 AS source_sha256,
       r.tar_path, r.image_offset, r.image_size, r.image_sha256,
       CASE WHEN p.key IS NULL THEN 'missing_from:face_text_pairs'
            WHEN f.key IS NULL THEN 'missing_from:face_detections'
            WHEN r.key IS NULL THEN 'missing_from:raw_shards' END AS missing_from
FROM read_parquet($denoised) d
LEFT JOIN read_parquet($pairs) p USING (key)
LEFT JOIN read_parquet($detections) f USING (key)
LEFT JOIN read_parquet($raw) r USING (key)
WHERE d.outcome <> 'dropped'
ORDER BY d.key
