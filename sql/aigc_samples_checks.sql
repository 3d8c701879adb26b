-- Facts the aigc_samples checks assert: every sample has a status, and every kept image is 1024x1024.
SELECT
    count(*)                                                                              AS samples,
    count(*) FILTER (WHERE status = 'ok')                                                 AS ok,
    count(*) FILTER (WHERE status IS NULL)                                                AS without_status,
    count(*) FILTER (WHERE image IS NOT NULL AND (image_width <> 1024 OR image_height <> 1024)) AS wrong_size,
    count(*) FILTER (WHERE status = 'ok' AND (image IS NULL OR caption IS NULL OR coalesce(image_width, 0) = 0)) AS ok_incomplete,
    coalesce(sum(cost_usd), 0)                                                            AS cost_usd
FROM read_parquet($path)
