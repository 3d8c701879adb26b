-- Caption length of the released samples in characters and words (paper 3.2: 85.1 and 15.6),
-- for the denoised TEXT and the original caption. A word is a run of non-space characters.
WITH captions AS (
    SELECT
        length(TEXT) AS chars, len(regexp_extract_all(TEXT, '\S+')) AS words,
        length(original_caption) AS original_chars, len(regexp_extract_all(original_caption, '\S+')) AS original_words
    FROM flip_release
)
SELECT
    count(*)                          AS captions,
    coalesce(avg(chars), 0)           AS mean_chars,
    coalesce(avg(words), 0)           AS mean_words,
    coalesce(median(chars), 0)        AS median_chars,
    coalesce(median(words), 0)        AS median_words,
    coalesce(avg(original_chars), 0)  AS mean_original_chars,
    coalesce(avg(original_words), 0)  AS mean_original_words
FROM captions
