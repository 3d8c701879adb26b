-- Released samples for the gallery: a stable pick by a hash of the key (the same release shows
-- the same samples), with where each image lies in its raw shard (none known: shown as missing).
-- The first $count of each shard by that hash: the card's gallery keeps the first $count of all
-- shards' picks (the same as picking over every shard at once).
SELECT r.file_shard AS shard, r.key, r.TEXT AS text, r.original_caption, r.face_boxes AS boxes,
       r.face_score, r.text_score,
       s.tar_path, s.image_offset, s.image_size, s.image_sha256,
       sha256('gallery:' || r.key) AS pick
FROM flip_release r
LEFT JOIN raw_shards s ON s.key = r.key AND s.file_shard = r.file_shard
QUALIFY row_number() OVER (PARTITION BY r.file_shard ORDER BY sha256('gallery:' || r.key)) <= $count
ORDER BY pick
