-- Facts the released_face_demographics checks assert, from the written partition and flip_release.
WITH faces AS (SELECT * FROM read_parquet($path)),
released AS (
    SELECT key, generate_subscripts(face_boxes, 1) - 1 AS face_index
    FROM read_parquet($release_path)
)
SELECT
    (SELECT count(*) FROM released)                                             AS released_faces,
    (SELECT count(*) FROM faces)                                                AS rows,
    (SELECT count(*) FROM faces WHERE error IS NULL)                            AS estimated,
    (SELECT count(*) FROM released ANTI JOIN faces USING (key, face_index))     AS missing_from_output,
    (SELECT count(*) FROM faces ANTI JOIN released USING (key, face_index))     AS not_released,
    (SELECT count(*) - count(DISTINCT (key, face_index)) FROM faces)            AS duplicate_faces,
    -- a face is estimated (every estimate set) or not (an error, no estimate)
    (SELECT count(*) FROM faces
      WHERE (error IS NULL AND (age IS NULL OR gender IS NULL OR race IS NULL))
         OR (error IS NOT NULL AND (age IS NOT NULL OR gender IS NOT NULL OR race IS NOT NULL))) AS unexplained,
    (SELECT count(*) FROM faces
      WHERE age < 0 OR age > 120 OR gender NOT IN ('male', 'female') OR NOT list_contains($races, race)
         OR age_confidence NOT BETWEEN 0 AND 1 OR gender_confidence NOT BETWEEN 0 AND 1
         OR race_confidence NOT BETWEEN 0 AND 1)                                AS estimates_out_of_range
