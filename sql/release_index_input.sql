-- Every published candidate of every shard: what deduplication needs.
SELECT shard, key, sha256, phash FROM read_parquet($candidates)
