-- Released faces: count, side (square root of the box area, pixels), share of the image area.
WITH faces AS (
    SELECT
        sqrt(greatest(b[3] - b[1], 0) * greatest(b[4] - b[2], 0)) AS side,
        greatest(b[3] - b[1], 0) * greatest(b[4] - b[2], 0) / nullif(CAST(HEIGHT AS DOUBLE) * WIDTH, 0) AS area_share
    FROM (SELECT unnest(face_boxes) AS b, HEIGHT, WIDTH FROM flip_release)
)
SELECT
    count(*)                        AS faces,
    coalesce(avg(side), 0)          AS mean_side,
    coalesce(median(side), 0)       AS median_side,
    coalesce(avg(area_share), 0)    AS mean_area_share
FROM faces
