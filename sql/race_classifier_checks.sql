-- Facts the race_classifier checks assert: UTKFace's split is by image (no file in both parts),
-- and the classifier's test accuracy against always answering the most frequent training race.
WITH faces AS (SELECT file_name, split, race FROM read_parquet($utkface)),
train AS (SELECT race, count(*) AS n FROM faces WHERE split = 'train' GROUP BY race)
SELECT
    (SELECT count(*) FROM faces WHERE split = 'train')                       AS train_faces,
    (SELECT count(*) FROM faces WHERE split = 'test')                        AS test_faces,
    (SELECT count(DISTINCT file_name) FROM faces WHERE split = 'train'
        AND file_name IN (SELECT file_name FROM faces WHERE split = 'test')) AS images_in_both_splits,
    (SELECT count(*) FROM faces WHERE split = 'test'
        AND race = (SELECT arg_max(race, n) FROM train))
        / nullif((SELECT count(*) FROM faces WHERE split = 'test'), 0)       AS majority_baseline
