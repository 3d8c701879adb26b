-- The released samples ($files) that are the sources ($keys) of generated images.
SELECT key, shard, original_caption, laion_nsfw, sha256 FROM read_parquet($files) WHERE list_contains($keys, key)
