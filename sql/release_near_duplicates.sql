-- Pairs of candidates ($candidates) whose 64-bit perceptual hashes lie at most $max_distance bits
-- apart, the earlier (by shard, then key) first. Only the first copy of each image (SHA-256)
-- takes part: later copies share its verdict. Pairs are looked for among hashes that agree on
-- one of the bit ranges ($shifts, $masks): hashes that close agree on at least one of them.
WITH c AS (
    SELECT shard, key, ('0x' || phash)::UBIGINT AS h
    FROM read_parquet($candidates)
    WHERE phash IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY coalesce(sha256, shard || '/' || key) ORDER BY shard, key) = 1
),
bands AS (
    SELECT shard, key, h, i, (h >> $shifts[i]) & $masks[i] AS v
    FROM c, range(1, len($shifts) + 1) AS t(i)
)
SELECT DISTINCT a.shard AS earlier_shard, a.key AS earlier_key, b.shard AS later_shard, b.key AS later_key
FROM bands a JOIN bands b ON a.i = b.i AND a.v = b.v AND (a.shard, a.key) < (b.shard, b.key)
WHERE bit_count(xor(a.h, b.h)) <= $max_distance
