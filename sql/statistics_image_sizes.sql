-- Released images: mean and median height and width (pixels), mean megapixels, and a histogram
-- of the longer side in powers of two (64 stands for under 128, 4096 for 4096 or more).
SELECT
    coalesce(avg(HEIGHT), 0)                                 AS mean_height,
    coalesce(avg(WIDTH), 0)                                  AS mean_width,
    coalesce(median(HEIGHT), 0)                              AS median_height,
    coalesce(median(WIDTH), 0)                               AS median_width,
    coalesce(avg(CAST(HEIGHT AS DOUBLE) * WIDTH) / 1e6, 0)   AS mean_megapixels,
    histogram(CAST(pow(2, least(greatest(floor(log2(greatest(HEIGHT, WIDTH, 1))), 6), 12)) AS INTEGER)) AS side_histogram
FROM flip_release
