-- Index entries ($index: files) close to each probe entry ($probe: qrow, h, s64): the same
-- SHA-256 digest (same_sha, confirmed on the strings by the caller), or perceptual hashes at
-- most $max_distance bits apart. The hash is cut into bands ($shifts, $masks); hashes that close
-- lie within a band's radius in at least one band, so each probe looks up its band values with
-- every flip of at most that radius ($flips, per band) and only those entries are compared.
-- Matches are named by file and row, so that only the hash columns of the index are read.
-- ix is read twice rather than materialized: it is every row of the index.
WITH q AS (SELECT qrow, h, s64 FROM read_parquet($probe)),
ix AS NOT MATERIALIZED (
    SELECT h, s64, filename AS file, file_row_number AS row
    FROM read_parquet($index, filename = true, file_row_number = true)
),
qb AS (
    SELECT qrow, h, i, xor((h >> $shifts[i]) & $masks[i], f) AS v
    FROM (SELECT qrow, h, i, unnest($flips[i]) AS f FROM q, range(1, len($shifts) + 1) AS t(i) WHERE h IS NOT NULL)
),
ib AS (
    SELECT file, row, h, i, (h >> $shifts[i]) & $masks[i] AS v
    FROM ix, range(1, len($shifts) + 1) AS t(i)
    WHERE h IS NOT NULL
)
SELECT DISTINCT qb.qrow, ib.file, ib.row, false AS same_sha
FROM qb JOIN ib ON qb.i = ib.i AND qb.v = ib.v
WHERE bit_count(xor(qb.h, ib.h)) <= $max_distance
UNION ALL
SELECT q.qrow, ix.file, ix.row, true AS same_sha
FROM q JOIN ix ON q.s64 = ix.s64
