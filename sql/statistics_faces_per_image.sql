-- Per shard: released images by number of faces; 10 stands for 10 or more.
SELECT file_shard AS shard, histogram(least(face_count, 10)) AS faces FROM flip_release GROUP BY file_shard
