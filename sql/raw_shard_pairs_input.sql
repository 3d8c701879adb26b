-- Every downloaded sample of every shard ($glob), for the unfiltered pairs of the ablation.
SELECT key, caption, tar_path, image_offset, image_size, image_sha256 FROM read_parquet($glob) WHERE status = 'ok' ORDER BY key
