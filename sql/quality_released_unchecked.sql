-- Released pairs without a verdict by looking ($keys: those with one): their number and the first few.
SELECT count(*) AS unchecked, list(key ORDER BY key)[1:20] AS examples
FROM flip_release
WHERE key NOT IN (SELECT unnest($keys))
