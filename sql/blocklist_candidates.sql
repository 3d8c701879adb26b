-- Candidates of every published shard ($candidates) that may be listed in the blocklist: by an
-- image hash ($hashes, lower case) or by the host of their URL ($hosts, lower case, as Unicode
-- and IDNA). Only these few rows reach Python, which compares canonical URLs (core/release/blocklist.py).
SELECT URL, sha256, source_sha256
FROM read_parquet($candidates)
WHERE list_contains($hashes, lower(sha256))
   OR list_contains($hashes, lower(source_sha256))
   OR list_contains($hosts, rtrim(lower(regexp_extract(
        URL, '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?(\[[^\]]*\]|[^/?#:]*)', 1)), '.'))
