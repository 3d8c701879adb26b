-- Facts of a shard's release ($path) and exclusions ($exclusions, known $reasons) against its candidates ($candidates).
WITH r AS (SELECT * FROM read_parquet($path)),
x AS (SELECT * FROM read_parquet($exclusions)),
c AS (SELECT key FROM read_parquet($candidates)),
out AS (SELECT key FROM r UNION ALL SELECT key FROM x)
SELECT
    (SELECT count(*) FROM c)                                          AS candidates,
    (SELECT count(*) FROM r)                                          AS released,
    (SELECT count(*) FROM x)                                          AS excluded,
    (SELECT count(*) FROM c ANTI JOIN out USING (key))                AS unaccounted,
    (SELECT count(*) FROM out ANTI JOIN c USING (key))                AS not_candidates,
    (SELECT count(*) - count(DISTINCT key) FROM out)                  AS in_both_or_twice,
    (SELECT count(*) - count(DISTINCT sha256) FROM r)                 AS released_sha256_twice,
    (SELECT count(*) FROM r WHERE shard <> $shard)                    AS wrong_shard,
    (SELECT count(*) FROM x WHERE NOT list_contains($reasons, reason))  AS unknown_reasons,
    (SELECT count(*) FROM x WHERE (reason IN ('duplicate_sha256', 'near_duplicate')) <> (duplicate_of IS NOT NULL AND duplicate_of_shard IS NOT NULL)) AS duplicate_without_original,
    (SELECT count(*) FROM r WHERE NSFW = 'NSFW')                      AS released_nsfw,
    (SELECT count(*) FROM r WHERE laion_nsfw IS NOT NULL)             AS with_laion_tag
