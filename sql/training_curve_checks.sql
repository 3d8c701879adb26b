-- Facts of a training curve: mean loss over its first and last tenth of steps.
WITH curve AS (SELECT * FROM read_parquet($path)),
span AS (SELECT max(step) AS steps, greatest(1, max(step) // 10) AS tenth FROM curve)
SELECT
    (SELECT steps FROM span) AS steps,
    (SELECT avg(loss) FROM curve WHERE step <= (SELECT tenth FROM span)) AS first_loss,
    (SELECT avg(loss) FROM curve WHERE step > (SELECT steps - tenth FROM span)) AS last_loss,
    (SELECT count(*) FROM curve WHERE isnan(loss) OR isinf(loss)) AS non_finite_losses
