-- Facts the denoising checks assert, from the written rows ($path) and their input ($input_path).
-- Keywords are compared as lower-case letter runs, as the keyword matcher tokenizes captions.
WITH d AS (SELECT * FROM read_parquet($path)),
src AS (SELECT key, kept FROM read_parquet($input_path)),
kw AS (
    SELECT key, unnest(keywords) AS keyword,
           regexp_extract_all(lower(precleaned), '\pL+') AS pre_words,
           regexp_extract_all(lower(denoised), '\pL+') AS out_words
    FROM d WHERE outcome <> 'dropped'
)
SELECT
    (SELECT count(*) FROM src)                                                   AS input_captions,
    (SELECT count(*) FROM d WHERE outcome = 'llm' AND reason IS NULL)            AS llm,
    (SELECT count(*) FROM d WHERE outcome = 'fallback' AND reason IS NOT NULL)   AS fallback,
    (SELECT count(*) FROM d WHERE outcome = 'dropped' AND reason IS NOT NULL)    AS dropped,
    (SELECT count(*) FROM src ANTI JOIN d USING (key))                           AS missing_from_output,
    (SELECT count(*) FROM d ANTI JOIN src USING (key))                           AS not_in_input,
    (SELECT count(*) - count(DISTINCT key) FROM d)                               AS duplicate_keys,
    (SELECT count(*) FROM d JOIN src USING (key) WHERE NOT src.kept AND d.outcome <> 'dropped') AS unkept_denoised,
    (SELECT count(*) FROM d WHERE outcome <> 'dropped' AND coalesce(trim(denoised), '') = '') AS empty_texts,
    (SELECT count(*) FROM d WHERE outcome = 'dropped' AND denoised IS NOT NULL)  AS dropped_with_text,
    (SELECT count(*) FROM kw WHERE list_contains(pre_words, keyword) AND NOT list_contains(out_words, keyword)) AS lost_keywords
