-- Facts the face_keywords checks assert: seeds present, words unique, candidates reviewed.
WITH kw AS (SELECT * FROM read_parquet($path)),
seeds AS (SELECT unnest($seeds::VARCHAR[]) AS word)
SELECT
    (SELECT list(word ORDER BY word) FROM seeds ANTI JOIN (SELECT word FROM kw WHERE review = 'seed') USING (word))
                                                                  AS missing_seeds,
    (SELECT count(*) - count(DISTINCT word) FROM kw)              AS duplicate_words,
    (SELECT count(*) FROM kw WHERE review IN ('seed', 'accepted')) AS used,
    (SELECT count(*) FROM kw WHERE review = 'accepted')           AS accepted,
    (SELECT count(*) FROM kw WHERE review = 'rejected')           AS rejected,
    (SELECT count(*) FROM kw WHERE review = 'unreviewed')         AS unreviewed,
    (SELECT list(word ORDER BY word) FROM kw WHERE review = 'unreviewed') AS unreviewed_words
