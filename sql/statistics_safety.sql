-- NSFW and duplicate shares. Candidates are the denoised face-text pairs: released + excluded.
-- nsfw_share counts the candidates our classifier flagged NSFW (released tagged, or excluded for
-- it), as the paper's 5.4 %; the LAION tag is compared where the source carried one.
WITH released AS (
    SELECT
        count(*)                                                        AS released,
        count(*) FILTER (WHERE NSFW = 'NSFW')                           AS released_nsfw,
        count(*) FILTER (WHERE NSFW = 'UNSURE')                         AS released_unsure,
        count(*) FILTER (WHERE laion_nsfw IS NOT NULL)                  AS laion_tagged,
        count(*) FILTER (WHERE laion_nsfw IS NOT NULL AND laion_nsfw = NSFW) AS laion_agrees
    FROM flip_release
),
excluded AS (
    SELECT
        count(*)                                                AS excluded,
        count(*) FILTER (WHERE reason = 'nsfw')                 AS excluded_nsfw,
        count(*) FILTER (WHERE reason LIKE '%duplicate%')       AS duplicates,
        count(*) FILTER (WHERE reason = 'blocklisted')          AS blocklisted
    FROM release_exclusions
)
SELECT
    *,
    released + excluded                                                          AS candidates,
    coalesce((released_nsfw + excluded_nsfw) / nullif(released + excluded, 0), 0) AS nsfw_share,
    coalesce(released_nsfw / nullif(released, 0), 0)                             AS released_nsfw_share,
    coalesce(duplicates / nullif(released + excluded, 0), 0)                     AS duplicate_share,
    coalesce(laion_agrees / nullif(laion_tagged, 0), 0)                          AS laion_agreement
FROM released, excluded
