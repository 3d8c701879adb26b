-- One shard's release index entries from its candidates ($candidates, one file or a glob): the
-- image's SHA-256 and perceptual hash, each also as a 64-bit number that lookups compare
-- instead of the strings (h: the hash itself; s64: the SHA-256's first 64 bits, or an MD5 of a
-- value that is not hex; a match is confirmed on the full string).
SELECT shard, key, sha256, phash,
    ('0x' || phash)::UBIGINT AS h,
    coalesce(TRY_CAST('0x' || left(sha256, 16) AS UBIGINT), md5_number_lower(sha256)) AS s64
FROM read_parquet($candidates)
ORDER BY shard, key
