-- Released images by number of faces; 10 stands for 10 or more.
SELECT least(face_count, 10) AS faces, count(*) AS images
FROM flip_release
GROUP BY ALL
ORDER BY faces
