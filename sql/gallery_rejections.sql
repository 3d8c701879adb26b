-- The most informative rejections of each shard, nearest the line first ($count of each kind per
-- shard; the card keeps the first $count of each kind over all shards, by `nearness`): a face
-- found but the caption rejected (highest caption score), and a caption naming a face keyword
-- with no face passing the detector (highest face score below the threshold; the sub-threshold
-- boxes are drawn).
(
    SELECT 'face found, caption rejected' AS kind, p.file_shard AS shard, p.key, p.caption,
           p.text_score, d.best_score AS face_score,
           [f.box FOR f IN d.faces] AS boxes,
           s.tar_path, s.image_offset, s.image_size, s.image_sha256,
           CAST(p.text_score AS DOUBLE) AS nearness
    FROM face_text_pairs p
    JOIN face_detections d ON d.key = p.key AND d.file_shard = p.file_shard
    JOIN raw_shards s ON s.key = p.key AND s.file_shard = p.file_shard
    WHERE NOT p.kept AND p.text_score IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY p.file_shard ORDER BY p.text_score DESC, p.key) <= $count
)
UNION ALL
(
    SELECT 'face keyword in caption, no face above the threshold' AS kind, d.file_shard AS shard, d.key, s.caption,
           NULL AS text_score, d.best_score AS face_score,
           [f.box FOR f IN d.faces] AS boxes,
           s.tar_path, s.image_offset, s.image_size, s.image_sha256,
           CAST(coalesce(d.best_score, 0) AS DOUBLE) AS nearness
    FROM face_detections d
    JOIN raw_shards s ON s.key = d.key AND s.file_shard = d.file_shard
    WHERE NOT d.kept AND d.drop_reason IN ('no_face', 'face_score_below_threshold')
      AND list_has_any(regexp_split_to_array(lower(s.caption), '[^a-z]+'), $keywords)
    QUALIFY row_number() OVER (PARTITION BY d.file_shard ORDER BY coalesce(d.best_score, 0) DESC, d.key) <= $count
)
