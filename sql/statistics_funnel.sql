-- The funnel of every shard (release_schema.md), then a 'total' row. A count is null where that
-- stage's file of the shard is missing or unreadable (table stage_files says which are present).
WITH raw AS (
    SELECT file_shard AS shard, count(*) AS raw, count(*) FILTER (WHERE status = 'ok') AS downloaded
    FROM raw_shards GROUP BY ALL
),
face AS (SELECT file_shard AS shard, count(*) FILTER (WHERE kept) AS face FROM face_detections GROUP BY ALL),
face_text AS (SELECT file_shard AS shard, count(*) FILTER (WHERE kept) AS face_text FROM face_text_pairs GROUP BY ALL),
denoised AS (
    SELECT file_shard AS shard, count(*) FILTER (WHERE denoised IS NOT NULL) AS denoised
    FROM denoised_captions GROUP BY ALL
),
released AS (SELECT file_shard AS shard, count(*) AS released FROM flip_release GROUP BY ALL),
excluded AS (SELECT file_shard AS shard, count(*) AS excluded FROM release_exclusions GROUP BY ALL),
per_shard AS (
    SELECT
        f.shard,
        CASE WHEN f.raw_shards THEN coalesce(raw.raw, 0) END                  AS raw,
        CASE WHEN f.raw_shards THEN coalesce(raw.downloaded, 0) END           AS downloaded,
        CASE WHEN f.face_detections THEN coalesce(face.face, 0) END           AS face,
        CASE WHEN f.face_text_pairs THEN coalesce(face_text.face_text, 0) END AS face_text,
        CASE WHEN f.denoised_captions THEN coalesce(denoised.denoised, 0) END AS denoised,
        CASE WHEN f.flip_release THEN coalesce(released.released, 0) END      AS released,
        CASE WHEN f.release_exclusions THEN coalesce(excluded.excluded, 0) END AS excluded
    FROM stage_files f
    LEFT JOIN raw USING (shard)
    LEFT JOIN face USING (shard)
    LEFT JOIN face_text USING (shard)
    LEFT JOIN denoised USING (shard)
    LEFT JOIN released USING (shard)
    LEFT JOIN excluded USING (shard)
)
SELECT * FROM (SELECT * FROM per_shard ORDER BY shard)
UNION ALL
SELECT 'total', sum(raw), sum(downloaded), sum(face), sum(face_text), sum(denoised), sum(released), sum(excluded)
FROM per_shard
