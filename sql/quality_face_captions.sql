-- The caption classifier's decisions on the labelled face-detected samples ($keys: the keys of
-- the committed Flickr8k labels), for its precision and recall by looking.
SELECT file_shard AS shard, key, caption, text_score, kept
FROM face_text_pairs
WHERE text_score IS NOT NULL AND key IN (SELECT unnest($keys))
