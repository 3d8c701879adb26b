-- Accuracy, precision, recall and F1 of scored captions (label 1 = face description), per
-- subset (a split, or the origin of a test caption) and over all of them (subset 'all').
WITH counts AS (
    SELECT coalesce(subset, 'all') AS subset,
        count(*) AS samples,
        count(*) FILTER (WHERE score > $threshold AND label = 1)  AS tp,
        count(*) FILTER (WHERE score > $threshold AND label = 0)  AS fp,
        count(*) FILTER (WHERE score <= $threshold AND label = 1) AS fn,
        count(*) FILTER (WHERE score <= $threshold AND label = 0) AS tn
    FROM read_parquet($path)
    GROUP BY GROUPING SETS ((subset), ())
)
SELECT subset, samples, tp, fp, fn, tn,
    (tp + tn) / samples                  AS accuracy,
    tp / nullif(tp + fp, 0)              AS precision,
    tp / nullif(tp + fn, 0)              AS recall,
    2 * tp / nullif(2 * tp + fp + fn, 0) AS f1
FROM counts
ORDER BY subset
