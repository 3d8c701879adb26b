-- Composition of the classifier dataset: samples per split, label, role (why it has its label) and origin.
SELECT split, label, role, origin, count(*) AS samples
FROM read_parquet($path)
GROUP BY ALL
ORDER BY split, label DESC, role, origin
