"""Storage of every asset's files (local or S3-compatible), shard reading, images, devices, data-quality suites."""
