-- Per shard, released faces in one pass over their boxes: count, sums of the side (the square
-- root of the box area, pixels) and of the share of the image area, a histogram of the side in
-- powers of two (16 stands for under 32, 1024 for 1024 or more) and one in whole pixels (floor),
-- from which the merge approximates the median side to the pixel (a median does not merge).
WITH faces AS (
    SELECT
        file_shard,
        sqrt(greatest(b[3] - b[1], 0) * greatest(b[4] - b[2], 0)) AS side,
        greatest(b[3] - b[1], 0) * greatest(b[4] - b[2], 0) / nullif(CAST(HEIGHT AS DOUBLE) * WIDTH, 0) AS area_share
    FROM (SELECT file_shard, unnest(face_boxes) AS b, HEIGHT, WIDTH FROM flip_release)
)
SELECT
    file_shard                      AS shard,
    count(*)                        AS faces,
    count(side)                     AS sides,
    sum(side)                       AS side_sum,
    count(area_share)               AS area_shares,
    sum(area_share)                 AS area_share_sum,
    histogram(CAST(pow(2, least(greatest(floor(log2(greatest(side, 1))), 4), 10)) AS INTEGER)) AS side_histogram,
    histogram(CAST(floor(side) AS INTEGER)) AS side_pixels
FROM faces
GROUP BY file_shard
