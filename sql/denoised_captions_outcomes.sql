-- How captions were denoised: by the model, by fallback (and why), or dropped (and why).
SELECT outcome || coalesce(':' || reason, '') AS outcome, count(*) AS captions
FROM read_parquet($path)
GROUP BY ALL
ORDER BY captions DESC, outcome
