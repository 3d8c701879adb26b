-- Facts the caption_classifier_dataset checks assert: balance per split (and, for training, per
-- negative round: each epoch trains on the positives and one round's negatives), no caption in two splits.
WITH d AS (SELECT * FROM read_parquet($path)),
positives AS (SELECT split, count(*) AS n FROM d WHERE label = 1 GROUP BY split),
negatives AS (SELECT split, negative_round, count(*) AS n FROM d WHERE label = 0 GROUP BY ALL),
per_set AS (
    SELECT coalesce(p.n, 0) AS positives, coalesce(n.n, 0) AS negatives
    FROM positives p FULL JOIN negatives n ON p.split = n.split
)
SELECT
    (SELECT count(*) FROM d)                                      AS samples,
    (SELECT count(*) FROM d WHERE label = 1)                      AS positives,
    (SELECT count(*) FROM d WHERE label = 0)                      AS negatives,
    (SELECT coalesce(max(abs(positives - negatives) / (positives + negatives)), 0) FROM per_set) AS max_split_imbalance,
    (SELECT count(*) FROM (SELECT lower(text) FROM d GROUP BY 1 HAVING count(DISTINCT split) > 1))
                                                                  AS captions_in_two_splits,
    (SELECT count(*) - count(DISTINCT lower(text)) FROM d)        AS duplicate_captions
