"""flip_ablation, in the spirit of the paper's Table 8: the same step budget from the same
initialisation on each training source, at least two seeds each, on the same tasks."""


from pathlib import Path

import pyarrow as pa
from dagster import AssetCheckSeverity, AssetExecutionContext, MaterializeResult, MetadataValue, asset

from flip_assets.core.io import storage
from flip_assets.core.training.contrastive_training import prepare_inputs, train
from flip_assets.core.io.devices import torch_device
from flip_assets.core.training.dual_encoder import build_model, load_tokenizer
from flip_assets.core.evaluation.eval_tables import bars_png, long_rows, markdown, seed_summary
from flip_assets.core.evaluation.face_benchmarks import evaluate, load_suite
from flip_assets.core.io.plots import markdown_image
from flip_assets.defs.asset_keys import FLIP_ABLATION, PAIR_ASSETS
from flip_assets.defs.automation import REFRESH_ON_CHANGE
from flip_assets.defs.checks import AssetChecks, Check
from flip_assets.defs.evaluation.resources import EvaluationResource
from flip_assets.defs.storage import FlipStorage
from flip_assets.defs.shared_resources import TrainingResource

# The target, judged on the first (CelebA-only) source: these must improve beyond the seed
# spread. CelebA zero-shot is judged on balanced accuracy: most attributes are rare, so plain
# accuracy rewards always answering "without" (an untrained model's random heads scored 0.65 and
# 0.78 mean accuracy with seeds 0 and 1, both 0.50 balanced).
TARGET_TASKS = (
    ("zero_shot", "CelebA 40 attributes", "mean balanced accuracy"),
    ("linear_probe", "UTKFace race", "accuracy"),
    ("linear_probe", "UTKFace gender", "accuracy"),
    ("linear_probe", "UTKFace age_group", "accuracy"),
    ("linear_probe", "FER2013 expression", "accuracy"),
)

CHECKS = AssetChecks(
    FLIP_ABLATION,
    Check(
        "trained_beats_init_beyond_seed_spread",
        "On the first source, the trained model's mean beats the initialisation's on CelebA zero-shot and on the "
        "UTKFace and FER2013 probes by more than the spread of the trained models over seeds. A warning: the "
        "table reports what does not improve.",
        zero=("targets_missed",), metadata=lambda f: {"missed": MetadataValue.json(f["missed"])},
        severity=AssetCheckSeverity.WARN,
    ),  # fmt: skip
)


def target_facts(summary: list[dict], source: str) -> dict:
    lines = {(s["table"], s["task"], s["metric"]): s for s in summary if s["source"] == source}
    missed = [" / ".join(t) for t in TARGET_TASKS if not lines.get(t, {}).get("beats_init_beyond_spread")]
    return {"targets_missed": len(missed), "missed": missed}


@asset(
    deps=list(PAIR_ASSETS), kinds={"pytorch", "parquet"}, check_specs=CHECKS.specs, code_version="1",
    automation_condition=REFRESH_ON_CHANGE,
)
def flip_ablation(
    context: AssetExecutionContext, flip_storage: FlipStorage, training: TrainingResource, evaluation: EvaluationResource
) -> MaterializeResult:
    """For each source of FLIP_ABLATION_SOURCES and seed of FLIP_ABLATION_SEEDS: the
    configuration's step budget from the seed's initialisation (the same for every source),
    then the evaluation of flip_eval_tables (without Table 9). Reports every run and, per
    source and task, the mean over seeds and the spread (max - min)."""
    config, device = training.training_config(), torch_device(training.device)
    suite = load_suite(Path(training.eval_data), evaluation.test_images, evaluation.train_images, training.seed)
    tokenizer, cache_dir = load_tokenizer(), flip_storage.directory("training_cache")
    rows = []
    for seed in evaluation.seeds:
        init_results = evaluate(build_model(config, seed=seed).to(device), tokenizer, suite, cache_dir, device, training.seed)
        for spec in evaluation.sources:
            names = training.source_assets(spec)
            pairs = pa.concat_tables([flip_storage.read(n).select(["sha256", "caption", "image"]) for n in names])
            model = build_model(config, seed=seed)
            inputs = prepare_inputs(
                model, tokenizer, pairs.column("image").to_pylist(), pairs.column("sha256").to_pylist(),
                pairs.column("caption").to_pylist(), cache_dir, device,
            )  # fmt: skip
            context.log.info(f"ablation: {spec}, seed {seed}, {len(pairs)} pairs, {config.steps} steps")
            run = train(model, inputs, config, seed, device, log=context.log.debug)
            facts = {"source": spec, "seed": seed, "pairs": len(pairs), "final_loss": run.curve[-1]["loss"], "split": "test"}
            rows += long_rows(init_results, "init", **facts) + long_rows(evaluate(model, tokenizer, suite, cache_dir, device, training.seed), "trained", **facts)  # fmt: skip
    path = flip_storage.write(FLIP_ABLATION, None, pa.Table.from_pylist(rows))
    summary = seed_summary(rows)
    lines = [{"source": s["source"], "task": f"{s['task']} ({s['metric']})", **{k: s[k] for k in ("init_mean", "trained_mean", "trained_spread", "better_by", "beats_init_beyond_spread")}} for s in summary]  # fmt: skip
    # The chart: trained means per source, for the tasks scored as accuracies (NME is on another scale).
    chart: dict[tuple, dict] = {}
    for s in summary:
        if s["table"] != "face_alignment":
            chart.setdefault((s["task"], s["metric"]), {"task": s["task"], "metric": s["metric"]})[s["source"]] = s["trained_mean"]
    png = bars_png(list(chart.values()), evaluation.sources, f"Ablation: trained mean over {len(evaluation.seeds)} seeds per source")
    storage.atomic_write_bytes(flip_storage.path(FLIP_ABLATION).with_name("ablation.png"), lambda tmp: tmp.write_bytes(png))
    return flip_storage.publish(context, MaterializeResult(
        metadata={
            "summary": MetadataValue.md(markdown(lines) + "\n\n" + markdown_image(png, "ablation")),
            "sources": MetadataValue.json(evaluation.sources), "seeds": MetadataValue.json(evaluation.seeds),
            "steps_per_run": config.steps,
        },
        check_results=CHECKS.results(target_facts(summary, evaluation.sources[0])),
    ))  # fmt: skip
