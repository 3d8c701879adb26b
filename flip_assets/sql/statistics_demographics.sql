-- Age group, gender and race of the released faces (paper Figure 6), and the faces that could
-- not be estimated (attribute 'not_estimated', value: why). `position` orders the values.
WITH faces AS (SELECT * FROM released_face_demographics WHERE error IS NULL)
SELECT 'age_group' AS attribute,
       CASE WHEN age >= 70 THEN '70+' ELSE CAST(10 * floor(age / 10) AS INTEGER) || '-' || CAST(10 * floor(age / 10) + 9 AS INTEGER) END AS value,
       least(floor(age / 10), 7) AS position, count(*) AS faces
FROM faces GROUP BY ALL
UNION ALL
SELECT 'gender', gender, 0, count(*) FROM faces GROUP BY ALL
UNION ALL
SELECT 'race', race, 0, count(*) FROM faces GROUP BY ALL
UNION ALL
SELECT 'not_estimated', error, 0, count(*) FROM released_face_demographics WHERE error IS NOT NULL GROUP BY ALL
ORDER BY attribute, position, faces DESC, value
