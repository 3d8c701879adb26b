"""The release: safety filters, blocklist, duplicate verdicts, the Parquet schema."""
