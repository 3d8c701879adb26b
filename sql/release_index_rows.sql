-- The number of entries in the index files $files (DuckDB answers from the Parquet footers).
SELECT count(*) AS n FROM read_parquet($files)
