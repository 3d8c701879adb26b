-- Per shard, released images: exact histograms of height and width (the merge takes means and
-- exact medians from the summed counts), the sum of megapixels, and a histogram of the longer
-- side in powers of two (64 stands for under 128, 4096 for 4096 or more).
SELECT
    file_shard                                            AS shard,
    histogram(HEIGHT)                                     AS heights,
    histogram(WIDTH)                                      AS widths,
    count(CAST(HEIGHT AS DOUBLE) * WIDTH)                 AS images,
    sum(CAST(HEIGHT AS DOUBLE) * WIDTH) / 1e6             AS megapixels_sum,
    histogram(CAST(pow(2, least(greatest(floor(log2(greatest(HEIGHT, WIDTH, 1))), 6), 12)) AS INTEGER)) AS side_histogram
FROM flip_release
GROUP BY file_shard
