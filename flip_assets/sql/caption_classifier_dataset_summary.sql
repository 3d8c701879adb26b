-- Composition of the classifier dataset: samples per split, label and origin.
SELECT split, label, origin, count(*) AS samples
FROM read_parquet($path)
GROUP BY ALL
ORDER BY split, label DESC, origin
