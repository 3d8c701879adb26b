-- Facts the checks of a training pairs asset assert: captions present and varied, and no image
-- (by SHA-256 of its bytes, recomputed here) that is also in an evaluation file: any split of
-- them except CelebA's train split, which is the CelebA training data itself.
WITH pairs AS (SELECT * FROM read_parquet($path)),
evaluation AS (
    SELECT DISTINCT sha256(image) AS sha256 FROM read_parquet($eval_glob, union_by_name = true, filename = true)
    WHERE NOT (filename LIKE '%celeba_attr.parquet' AND split = 'train')
),
templates AS (SELECT template, count(*) AS n FROM pairs GROUP BY template)
SELECT
    (SELECT count(*) FROM pairs)                                          AS pairs,
    (SELECT count(*) FROM pairs WHERE caption IS NULL OR trim(caption) = '') AS empty_captions,
    -- the source image's hash and that of the bytes as stored (a shard image is stored cut to 224 px)
    (SELECT count(*) FROM pairs
      WHERE sha256 IN (SELECT sha256 FROM evaluation) OR sha256(image) IN (SELECT sha256 FROM evaluation)) AS images_in_evaluation,
    (SELECT count(*) - count(DISTINCT sha256) FROM pairs)                 AS duplicate_images,
    (SELECT count(*) FROM templates)                                      AS templates,
    (SELECT coalesce(max(n)::DOUBLE / nullif(sum(n), 0), 0) FROM templates) AS largest_template_share,
    (SELECT count(DISTINCT caption)::DOUBLE / greatest(count(*), 1) FROM pairs) AS distinct_caption_share
