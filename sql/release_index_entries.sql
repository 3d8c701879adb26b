-- One shard's release index entries from its candidates ($candidates, one file or a glob): the
-- image's SHA-256 and perceptual hash, each also as a 64-bit number that lookups compare
-- instead of the strings (h: the hash itself; s64: a fixed digest of the SHA-256, confirmed
-- on the full string for every match).
SELECT shard, key, sha256, phash,
    ('0x' || phash)::UBIGINT AS h,
    md5_number_lower(sha256) AS s64
FROM read_parquet($candidates)
ORDER BY shard, key
