"""The evaluation tables in the paper's form: one row per (table, task, metric, model), Markdown
with the initial and trained models side by side, one bar chart per table, and the ablation's
summary over seeds (mean and spread, max - min)."""

from __future__ import annotations

import statistics
from collections import defaultdict

TABLES = ("zero_shot", "linear_probe", "face_alignment", "quality")
# Lower is better for these metrics; for the others higher is.
LOWER_IS_BETTER = ("NME (inter-ocular)", "perplexity")


def long_rows(results, model: str | None = None, **extra) -> list[dict]:
    """Rows of one long table: from evaluate()'s / baselines()' TaskScores (one row per seed,
    model as named in each unless `model` is given), or from dict tables of row dicts."""
    if isinstance(results, dict):
        return [
            {"table": table, "task": row["task"], "metric": row["metric"], "model": model, "value": float(row["value"]), "test_images": row["test_images"], **extra}  # fmt: skip
            for table in TABLES
            for row in results.get(table, [])
        ]
    return [
        {"table": s.table, "task": s.task, "metric": s.metric, "model": model or s.model, "seed": i, "value": v, "test_images": s.items, **extra}  # fmt: skip
        for s in results
        for i, v in enumerate(s.per_seed())
    ]


def improvement(metric: str, before: float, after: float) -> float:
    """after - before, signed so that positive is better."""
    return before - after if metric in LOWER_IS_BETTER else after - before


def side_by_side(rows: list[dict], table: str, models: list[str]) -> list[dict]:
    """One line per (task, metric) with a column per model, and the change from the first model to the last."""
    lines: dict[tuple, dict] = {}
    for row in rows:
        if row["table"] == table and row["model"] in models:
            line = lines.setdefault((row["task"], row["metric"]), {"task": row["task"], "metric": row["metric"]})
            line[row["model"]] = round(row["value"], 4)
    for line in lines.values():
        if all(m in line for m in (models[0], models[-1])):
            line["better_by"] = round(improvement(line["metric"], line[models[0]], line[models[-1]]), 4)
    return list(lines.values())


def markdown(lines: list[dict]) -> str:
    if not lines:
        return "none"
    columns = list(dict.fromkeys(k for line in lines for k in line))
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(str(line.get(c, "")) for c in columns) + " |" for line in lines]
    return "\n".join(out)


def bars_png(lines: list[dict], models: list[str], title: str) -> bytes:
    """Grouped bars: a group per (task, metric), a bar per model."""
    from flip_assets.core.io.plots import figure_png, new_figure

    figure, axes = new_figure(max(6.0, 1.4 * len(lines) + 2), 4.0)
    width = 0.8 / max(1, len(models))
    for i, model in enumerate(models):
        axes.bar([j + i * width for j in range(len(lines))], [line.get(model, 0.0) for line in lines], width, label=model)
    axes.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(lines))])
    axes.set_xticklabels([f"{line['task']}\n{line['metric']}" for line in lines], fontsize=7)
    axes.set_title(title)
    axes.legend(fontsize=8)
    return figure_png(figure)


def seed_summary(rows: list[dict]) -> list[dict]:
    """Per (source, table, task, metric): mean and spread over seeds of the initial and trained
    models, and whether training beat the initialisation by more than the trained spread."""
    groups: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[(row["source"], row["table"], row["task"], row["metric"])][row["model"]].append(row["value"])
    summary = []
    for (source, table, task, metric), values in groups.items():
        init, trained = values.get("init", []), values.get("trained", [])
        if not init or not trained:
            continue
        spread = max(trained) - min(trained)
        gain = improvement(metric, statistics.mean(init), statistics.mean(trained))
        summary.append({
            "source": source, "table": table, "task": task, "metric": metric, "seeds": len(trained),
            "init_mean": round(statistics.mean(init), 4), "trained_mean": round(statistics.mean(trained), 4),
            "trained_spread": round(spread, 4), "better_by": round(gain, 4), "beats_init_beyond_spread": gain > spread,
        })  # fmt: skip
    return summary


def by_model(scores: list) -> dict[tuple, dict]:
    """{(table, task, metric): {model: TaskScores with all its seeds}} in first-seen order."""
    from flip_assets.core.evaluation.uncertainty import stack_seeds

    runs: dict[tuple, dict[str, list]] = {}
    for s in scores:
        runs.setdefault(s.key, {}).setdefault(s.model, []).append(s)
    return {key: {model: stack_seeds(r) for model, r in models.items()} for key, models in runs.items()}


def verdict(low: float, high: float) -> str:
    return "gain" if low > 0 else "loss" if high < 0 else "no gain shown"


def compare(scores: list, trained: str = "trained", resamples: int = 1000, seed: int = 0) -> list[dict]:
    """One line per task: every model's metric (mean over its seeds), the trained model's gain
    over the best of the others (the baselines, the initial model included) with its paired
    clustered bootstrap interval (uncertainty.gain_interval), and the verdict: "gain" only when
    the whole interval is above zero."""
    from flip_assets.core.evaluation.uncertainty import gain_interval

    lines = []
    for (table, task, metric), models in by_model(scores).items():
        if trained not in models:
            continue
        others = [s for name, s in models.items() if name != trained]
        interval = gain_interval(models[trained], others, resamples=resamples, seed=seed)
        lines.append({
            "table": table, "task": task, "metric": metric, "test_items": models[trained].items,
            "seeds": models[trained].seeds, **{name: round(s.value, 4) for name, s in models.items()},
            "best_baseline": interval.best_baseline, "gain": round(interval.estimate, 4),
            "interval": f"[{interval.low:+.4f}, {interval.high:+.4f}]", "low": interval.low, "high": interval.high,
            "verdict": verdict(interval.low, interval.high),
        })  # fmt: skip
    return lines


def gain_facts(lines: list[dict]) -> dict:
    """What the beats-the-best-baseline check judges: the tasks whose interval is not above zero."""
    return {
        "tasks_without_gain": sum(line["verdict"] != "gain" for line in lines), "tasks": len(lines),
        "intervals": {f"{line['table']} / {line['task']}": f"{line['gain']:+.4f} {line['interval']} vs {line['best_baseline']}: {line['verdict']}" for line in lines},
    }  # fmt: skip
