-- Facts the caption_classifier_dataset checks assert: balance per split, no caption in two splits.
WITH d AS (SELECT * FROM read_parquet($path)),
per_split AS (
    SELECT split, count(*) AS samples, count(*) FILTER (WHERE label = 1) AS positives
    FROM d GROUP BY split
)
SELECT
    (SELECT count(*) FROM d)                                      AS samples,
    (SELECT count(*) FROM d WHERE label = 1)                      AS positives,
    (SELECT count(*) FROM d WHERE label = 0)                      AS negatives,
    (SELECT coalesce(max(abs(2 * positives - samples) / samples), 0) FROM per_split) AS max_split_imbalance,
    (SELECT count(*) FROM (SELECT lower(text) FROM d GROUP BY 1 HAVING count(DISTINCT split) > 1))
                                                                  AS captions_in_two_splits,
    (SELECT count(*) - count(DISTINCT lower(text)) FROM d)        AS duplicate_captions
