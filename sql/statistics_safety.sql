-- Per shard: the counts behind the NSFW and duplicate shares (the merge sums them and divides).
-- Candidates are the denoised face-text pairs: released + excluded. The NSFW share counts the
-- candidates our classifier flagged NSFW (released tagged, or excluded for it), as the paper's
-- 5.4 %; the LAION tag is compared where the source carried one.
WITH released AS (
    SELECT
        file_shard                                                      AS shard,
        count(*)                                                        AS released,
        count(*) FILTER (WHERE NSFW = 'NSFW')                           AS released_nsfw,
        count(*) FILTER (WHERE NSFW = 'UNSURE')                         AS released_unsure,
        count(*) FILTER (WHERE laion_nsfw IS NOT NULL)                  AS laion_tagged,
        count(*) FILTER (WHERE laion_nsfw IS NOT NULL AND laion_nsfw = NSFW) AS laion_agrees
    FROM flip_release GROUP BY file_shard
),
excluded AS (
    SELECT
        file_shard                                              AS shard,
        count(*)                                                AS excluded,
        count(*) FILTER (WHERE reason = 'nsfw')                 AS excluded_nsfw,
        count(*) FILTER (WHERE reason LIKE '%duplicate%')       AS duplicates,
        count(*) FILTER (WHERE reason = 'blocklisted')          AS blocklisted
    FROM release_exclusions GROUP BY file_shard
)
SELECT
    shard,
    coalesce(released, 0) AS released, coalesce(released_nsfw, 0) AS released_nsfw,
    coalesce(released_unsure, 0) AS released_unsure, coalesce(laion_tagged, 0) AS laion_tagged,
    coalesce(laion_agrees, 0) AS laion_agrees, coalesce(excluded, 0) AS excluded,
    coalesce(excluded_nsfw, 0) AS excluded_nsfw, coalesce(duplicates, 0) AS duplicates,
    coalesce(blocklisted, 0) AS blocklisted
FROM released FULL OUTER JOIN excluded USING (shard)
