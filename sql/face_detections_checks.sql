-- Facts the face_detections checks assert, computed from the written partition and its input.
WITH det AS (SELECT * FROM read_parquet($path)),
raw AS (SELECT key FROM read_parquet($raw_path)),
faces AS (SELECT d.key, d.image_width AS w, d.image_height AS h, unnest(d.faces) AS f FROM det d)
SELECT
    (SELECT count(*) FROM raw)                                           AS input_samples,
    (SELECT count(*) FROM det WHERE kept)                                AS kept,
    (SELECT count(*) FROM det WHERE NOT kept AND drop_reason IS NOT NULL) AS dropped_with_reason,
    (SELECT count(*) FROM raw ANTI JOIN det USING (key))                 AS missing_from_output,
    (SELECT count(*) - count(DISTINCT key) FROM det)                     AS duplicate_keys,
    (SELECT count(*) FROM faces WHERE f.score < 0 OR f.score > 1)        AS faces_out_of_range,
    (SELECT count(*) FROM det WHERE best_score < 0 OR best_score > 1)    AS best_scores_out_of_range,
    (SELECT count(*) FROM faces
      WHERE f.box[1] < 0 OR f.box[2] < 0 OR f.box[3] > w OR f.box[4] > h
         OR f.box[1] > f.box[3] OR f.box[2] > f.box[4])                  AS boxes_outside_image
