-- Quality figures of denoising (paper 3.2: 9.5% of characters removed, GPT-2 perplexity 88.5 -> 68.6)
-- over the captions that were denoised; $path may be a glob over shards.
WITH d AS (SELECT * FROM read_parquet($path) WHERE outcome <> 'dropped')
SELECT
    count(*)                                                                   AS captions,
    count(*) FILTER (WHERE outcome = 'llm')                                    AS by_llm,
    coalesce(sum(length(caption)), 0)                                          AS chars_before,
    coalesce(sum(length(denoised)), 0)                                         AS chars_after,
    1 - sum(length(denoised)) / nullif(sum(length(caption)), 0)                AS chars_removed_share,
    1 - sum(length(precleaned)) / nullif(sum(length(caption)), 0)              AS chars_removed_by_preclean_share,
    avg(ppl_before)                                                            AS ppl_before_mean,
    avg(ppl_after)                                                             AS ppl_after_mean,
    median(ppl_before)                                                         AS ppl_before_median,
    median(ppl_after)                                                          AS ppl_after_median
FROM d
