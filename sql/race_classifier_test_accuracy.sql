-- The race classifier's accuracy on its test faces (recall over all races), from its metrics ($path).
SELECT recall FROM read_parquet($path) WHERE race = 'all'
