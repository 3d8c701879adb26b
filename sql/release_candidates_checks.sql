-- Facts of a shard's candidates ($path) against the denoised captions they come from ($denoised).
WITH c AS (SELECT * FROM read_parquet($path)),
d AS (SELECT key FROM read_parquet($denoised) WHERE outcome <> 'dropped')
SELECT
    (SELECT count(*) FROM c)                                          AS candidates,
    (SELECT count(*) FROM d ANTI JOIN c USING (key))                  AS missing_candidates,
    (SELECT count(*) FROM c ANTI JOIN d USING (key))                  AS not_denoised,
    (SELECT count(*) - count(DISTINCT key) FROM c)                    AS duplicate_keys,
    (SELECT count(*) FROM c WHERE image_problem IS NULL
        AND (nsfw_score IS NULL OR NOT nsfw_score BETWEEN 0 AND 1 OR phash IS NULL OR sha256 IS NULL)) AS unscored,
    (SELECT count(*) FROM c WHERE laion_nsfw IS NOT NULL)             AS with_source_nsfw_tag,
    (SELECT coalesce(max(nsfw_score), 0) FROM c)                      AS max_nsfw_score
