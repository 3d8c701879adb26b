-- Released faces by size: the side of a square of the box's area in pixels, in powers of two
-- (16 stands for under 32, 1024 for 1024 or more).
WITH faces AS (
    SELECT sqrt(greatest(b[3] - b[1], 0) * greatest(b[4] - b[2], 0)) AS side
    FROM (SELECT unnest(face_boxes) AS b FROM flip_release)
)
SELECT CAST(pow(2, least(greatest(floor(log2(greatest(side, 1))), 4), 10)) AS INTEGER) AS side_from, count(*) AS faces
FROM faces
GROUP BY ALL
ORDER BY side_from
