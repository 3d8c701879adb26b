-- The released pairs with a verdict by looking ($keys: the keys of the committed verdicts).
SELECT file_shard AS shard, key, TEXT
FROM flip_release
WHERE key IN (SELECT unnest($keys))
