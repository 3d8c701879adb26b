-- Released faces, in one pass over their boxes: count, side (the square root of the box area,
-- pixels), share of the image area, and a histogram of the side in powers of two (16 stands for
-- under 32, 1024 for 1024 or more).
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
    coalesce(avg(area_share), 0)    AS mean_area_share,
    histogram(CAST(pow(2, least(greatest(floor(log2(greatest(side, 1))), 4), 10)) AS INTEGER)) AS side_histogram
FROM faces
