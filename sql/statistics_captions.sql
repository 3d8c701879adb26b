-- Caption length of the released samples in characters and words (paper 3.2: 85.1 and 15.6),
-- for the denoised TEXT and the original caption, and the histogram of TEXT's words (40 stands
-- for 40 or more). A word is a run of characters between spaces: splitting on the space costs a
-- tenth of a regular expression, and the pre-clean leaves no other whitespace in TEXT.
WITH captions AS (
    SELECT
        length(TEXT) AS chars,
        len(list_filter(string_split(TEXT, ' '), lambda w: w <> '')) AS words,
        length(original_caption) AS original_chars,
        len(list_filter(string_split(original_caption, ' '), lambda w: w <> '')) AS original_words
    FROM flip_release
)
SELECT
    count(*)                          AS captions,
    coalesce(avg(chars), 0)           AS mean_chars,
    coalesce(avg(words), 0)           AS mean_words,
    coalesce(median(chars), 0)        AS median_chars,
    coalesce(median(words), 0)        AS median_words,
    coalesce(avg(original_chars), 0)  AS mean_original_chars,
    coalesce(avg(original_words), 0)  AS mean_original_words,
    histogram(least(words, 40))       AS word_histogram
FROM captions
