-- Per shard: age group, gender and race of the released faces (paper Figure 6), and why the
-- others could not be estimated, as histograms from one pass. Age groups are decades ('0-9' ...
-- '60-69', '70+').
SELECT
    file_shard AS shard,
    histogram(CASE WHEN age >= 70 THEN '70+'
                   ELSE CAST(10 * floor(age / 10) AS INTEGER) || '-' || CAST(10 * floor(age / 10) + 9 AS INTEGER) END)
        FILTER (WHERE error IS NULL)        AS age_group,
    histogram(gender) FILTER (WHERE error IS NULL) AS gender,
    histogram(race) FILTER (WHERE error IS NULL)   AS race,
    histogram(error) FILTER (WHERE error IS NOT NULL) AS not_estimated
FROM released_face_demographics
GROUP BY file_shard
