-- Released images by their longer side in pixels, in powers of two (64 stands for under 128,
-- 4096 for 4096 or more).
SELECT
    CAST(pow(2, least(greatest(floor(log2(greatest(HEIGHT, WIDTH, 1))), 6), 12)) AS INTEGER) AS side_from,
    count(*) AS images
FROM flip_release
GROUP BY ALL
ORDER BY side_from
