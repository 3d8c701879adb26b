-- Per shard: caption length of the released samples in characters and words (paper 3.2: 85.1
-- and 15.6) as exact histograms of TEXT (mergeable across shards: the means and the exact medians
-- come from the summed counts), and sums for the original caption's means. A word is a run of
-- characters between spaces: splitting on the space costs a tenth of a regular expression, and
-- the pre-clean leaves no other whitespace in TEXT.
WITH captions AS (
    SELECT
        file_shard,
        length(TEXT) AS chars,
        len(list_filter(string_split(TEXT, ' '), lambda w: w <> '')) AS words,
        length(original_caption) AS original_chars,
        len(list_filter(string_split(original_caption, ' '), lambda w: w <> '')) AS original_words
    FROM flip_release
)
SELECT
    file_shard                 AS shard,
    count(*)                   AS captions,
    histogram(chars)           AS chars,
    histogram(words)           AS words,
    count(original_chars)      AS original_captions,
    sum(original_chars)::DOUBLE AS original_chars_sum,
    sum(original_words)::DOUBLE AS original_words_sum
FROM captions
GROUP BY file_shard
