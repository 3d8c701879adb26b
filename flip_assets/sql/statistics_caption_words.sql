-- Histogram of caption length in words (TEXT of the released samples); 40 stands for 40 or more.
SELECT least(len(regexp_extract_all(TEXT, '\S+')), 40) AS words, count(*) AS samples
FROM flip_release
GROUP BY ALL
ORDER BY words
