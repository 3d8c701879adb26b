"""What every domain shares: storage of every asset's files (local or S3-compatible), shard reading,
images, devices, data-quality suites, figures for asset metadata."""
