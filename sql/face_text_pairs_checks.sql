-- Facts the face_text_pairs checks assert, from the written partition and face_detections.
WITH pairs AS (SELECT * FROM read_parquet($path)),
faces AS (SELECT key FROM read_parquet($detections_path) WHERE kept)
SELECT
    (SELECT count(*) FROM faces)                               AS face_samples,
    (SELECT count(*) FROM pairs)                               AS pairs,
    (SELECT count(*) FROM pairs WHERE kept)                    AS kept,
    (SELECT count(*) FROM faces ANTI JOIN pairs USING (key))   AS missing_from_output,
    (SELECT count(*) FROM pairs ANTI JOIN faces USING (key))   AS not_face_samples,
    (SELECT count(*) - count(DISTINCT key) FROM pairs)         AS duplicate_keys,
    -- every row is kept with a score, or dropped with a reason
    (SELECT count(*) FROM pairs
      WHERE kept IS NULL OR (kept AND (drop_reason IS NOT NULL OR text_score IS NULL))
         OR (NOT kept AND drop_reason IS NULL))                AS unexplained,
    (SELECT count(*) FROM pairs
      WHERE isnan(text_score) OR text_score < 0 OR text_score > 1) AS scores_out_of_range,
    (SELECT count(*) FROM pairs WHERE kept AND text_score <= $threshold) AS kept_at_or_below_threshold
