-- Released images: mean and median height and width (pixels) and mean megapixels.
SELECT
    coalesce(avg(HEIGHT), 0)                                 AS mean_height,
    coalesce(avg(WIDTH), 0)                                  AS mean_width,
    coalesce(median(HEIGHT), 0)                              AS median_height,
    coalesce(median(WIDTH), 0)                               AS median_width,
    coalesce(avg(CAST(HEIGHT AS DOUBLE) * WIDTH) / 1e6, 0)   AS mean_megapixels
FROM flip_release
