"""Settings: one rule from environment variables to resource fields, defaults kept once (in the
core settings or the resource field), errors naming the variable, and the README's table in step."""

from __future__ import annotations

import re

import pytest
from conftest import REPO_ROOT
from dagster import EnvVar

from flip_assets.core.curation.caption_classifier import TrainingSettings
from flip_assets.core.curation.caption_training import WebDatasetSettings
from flip_assets.core.curation.denoiser import DenoiseSettings
from flip_assets.core.curation.keywords import Word2VecSettings
from flip_assets.core.curation.llm_client import RetryPolicy
from flip_assets.defs.curation.resources import CaptionFilterResource, KeywordMiningResource, LLMResource
from flip_assets.defs.resources import build_resources

SECTION = "## Settings (environment variables)"


def env_fields() -> dict[str, list[tuple[type, str]]]:
    """Every variable of the resources the pipeline builds -> the (resource class, field) it sets."""
    mapping: dict[str, list[tuple[type, str]]] = {}
    for resource in build_resources().values():
        for field, name in type(resource).ENV.items():
            mapping.setdefault(name, []).append((type(resource), field))
    return mapping


def readme_rows() -> list[tuple[list[str], str]]:
    """(variables, default cell) of each row of the tables with a `variable` column under SECTION."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split(SECTION, 1)[1].split("\n#", 1)[0]
    rows, header = [], None
    for line in section.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = cells
        elif "variable" in header and not set(line) <= set("|- "):
            rows.append((re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[header.index("variable")]), cells[header.index("default")]))
    return rows


def test_readme_lists_exactly_the_variables_the_resources_read():
    documented = [name for names, _ in readme_rows() for name in names]
    assert len(documented) == len(set(documented)), "a variable is listed twice"
    read = set(env_fields())
    assert not read - set(documented), f"missing from the README: {sorted(read - set(documented))}"
    assert not set(documented) - read, f"documented but read by no resource: {sorted(set(documented) - read)}"


def test_readme_numeric_defaults_are_the_field_defaults():
    """Where a row gives one default per variable, each number is the default of the field it sets."""
    mapping, compared = env_fields(), 0
    for names, cell in readme_rows():
        defaults = [d.strip(" `") for d in cell.split(",")]
        if len(defaults) != len(names):
            continue
        for name, default in zip(names, defaults):
            if re.fullmatch(r"[0-9.]+", default):
                for cls, field in mapping[name]:
                    assert float(default) == cls.model_fields[field].default, f"{name}: README {default}, {cls.__name__}.{field}"
                    compared += 1
    assert compared >= 20


def test_resource_defaults_are_the_core_settings():
    classifier = CaptionFilterResource(base_model="unused", celeba_attr="unused", review_file="unused")
    assert classifier.training_settings() == TrainingSettings()
    assert classifier.dataset_settings() == WebDatasetSettings()
    assert KeywordMiningResource(review_file="unused").settings() == Word2VecSettings()
    llm = LLMResource(base_url="http://127.0.0.1:1/v1")
    assert llm.max_fallback_share == DenoiseSettings.max_fallback_share
    assert llm.max_retries == RetryPolicy.max_retries


def clear_settings(monkeypatch):
    for name in env_fields():
        monkeypatch.delenv(name, raising=False)


def test_unset_variables_leave_the_field_defaults(monkeypatch):
    clear_settings(monkeypatch)
    for key, resource in build_resources().items():
        for field, name in type(resource).ENV.items():
            info = type(resource).model_fields[field]
            # FLIP_HOME defaults to the checkout's folder, for the LLM's local server as for storage.
            if not info.is_required() and name != "FLIP_HOME":
                assert getattr(resource, field) == info.default, f"{key}.{field} ({name})"


LOCAL = "http://127.0.0.1:9/v1"


def test_every_variable_reaches_its_field(monkeypatch, tmp_path):
    """Each variable set to a value of its own, valid where the resource checks it, ends up in its field."""
    clear_settings(monkeypatch)
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}")
    (tmp_path / "corpus.parquet").touch()
    (tmp_path / "review.csv").touch()
    valid = {
        "FLIP_DETECTOR": "yunet", "OPENAI_BASE_URL": LOCAL, "FLIP_AIGC_BASE_URL": LOCAL,
        "FLIP_CLASSIFIER_BASE": str(tmp_path / "base"), "FLIP_CAPTION_CORPUS": str(tmp_path / "corpus.parquet"),
        "FLIP_KEYWORD_REVIEW": str(tmp_path / "review.csv"), "FLIP_CAPTION_REVIEW": str(tmp_path / "review.csv"),
        "FLIP_CAPTION_TRAINING_LABELS": str(tmp_path / "review.csv"), "FLIP_DEVICE": "cpu", "FLIP_HOME": str(tmp_path / "home"), "FLIP_NSFW_ACTION": "drop", "FLIP_NEAR_DUPLICATE_BITS": 6,
        "FLIP_TRAIN_CONFIG": "clip_vit_b32", "FLIP_TRAIN_SOURCES": "raw_shard_pairs", "FLIP_EVAL_DATA": str(tmp_path),
        "FLIP_ABLATION_SOURCES": "raw_shard_pairs", "FLIP_ABLATION_SEEDS": "3,4",
    }  # fmt: skip
    expected = {}
    for i, (name, targets) in enumerate(sorted(env_fields().items())):
        kind = targets[0][0].model_fields[targets[0][1]].annotation
        value = valid[name] if name in valid else 10 + i if kind is int else 0.01 * (i + 1) if kind is float else f"value-of-{name}"
        monkeypatch.setenv(name, str(value))
        expected |= {(cls, field): value for cls, field in targets}
    for resource in build_resources().values():
        with resource.process_config_and_initialize_cm() as resolved:  # resolves the EnvVars, then sets up
            for field in type(resource).ENV:
                assert getattr(resolved, field) == expected[type(resource), field], f"{type(resource).__name__}.{field}"


def set_up(resource) -> None:
    """Resolve the resource's config and set it up, as a run would."""
    with resource.process_config_and_initialize_cm():
        pass


@pytest.mark.parametrize(
    "key, env, message",
    [
        ("face_detector", {"FLIP_DETECTOR": "mtcnn"}, "FLIP_DETECTOR='mtcnn' is not one of"),
        ("face_detector", {"FLIP_FACE_THRESHOLD": "1.5"}, "FLIP_FACE_THRESHOLD=1.5 must lie in (0, 1)"),
        ("llm", {"OPENAI_BASE_URL": LOCAL, "FLIP_LLM_MAX_REQUESTS": "-1"}, "FLIP_LLM_MAX_REQUESTS=-1 must not be negative"),
        ("aigc", {"FLIP_AIGC_BASE_URL": LOCAL, "FLIP_AIGC_TIMEOUT_S": "0"}, "FLIP_AIGC_TIMEOUT_S=0 must be at least 1"),
        ("keyword_mining", {"FLIP_W2V_EPOCHS": "0"}, "FLIP_W2V_EPOCHS=0 must be at least 1"),
        ("caption_filter", {"FLIP_CLASSIFIER_MAX_SAMPLES": "0"}, "FLIP_CLASSIFIER_MAX_SAMPLES=0 must be at least 1"),
        ("caption_filter", {"FLIP_CLASSIFIER_MAX_LENGTH": "4"}, "FLIP_CLASSIFIER_MAX_LENGTH=4 must lie in [8, 512]"),
        ("caption_filter", {"FLIP_FACE_EVAL_SAMPLES": "0"}, "FLIP_FACE_EVAL_SAMPLES=0 must be at least 1"),
        ("caption_filter", {"FLIP_TEXT_THRESHOLD": "1"}, "FLIP_TEXT_THRESHOLD=1.0 must lie in [0, 1) (0: the chosen threshold)"),
        ("caption_filter", {"FLIP_CLASSIFIER_MIN_RECALL": "1.5"}, "FLIP_CLASSIFIER_MIN_RECALL=1.5 must lie in [0, 1]"),
        ("face_detector", {"FLIP_DEVICE": "gpu"}, "FLIP_DEVICE='gpu' is not a device"),
        ("llm", {"FLIP_LLM_LOCAL_IDLE_S": "-1"}, "FLIP_LLM_LOCAL_IDLE_S=-1 must not be negative"),
        ("training", {"FLIP_TRAIN_CONFIG": "vit_h14"}, "FLIP_TRAIN_CONFIG: training config 'vit_h14' not found"),
        ("training", {"FLIP_TRAIN_SOURCES": "celeba_caption_pairs+laion"}, "FLIP_TRAIN_SOURCES: 'celeba_caption_pairs+laion' names no"),
        ("evaluation", {"FLIP_ABLATION_SEEDS": "0"}, "FLIP_ABLATION_SEEDS='0' needs at least 2 seeds"),
        ("release", {"FLIP_NSFW_ACTION": "blur"}, "FLIP_NSFW_ACTION='blur' is not one of ('tag', 'drop')"),
        ("release", {"FLIP_NSFW_LOW_THRESHOLD": "0.6"}, "FLIP_NSFW_LOW_THRESHOLD=0.6 must lie in (0, FLIP_NSFW_THRESHOLD=0.5]"),
        ("release", {"FLIP_NEAR_DUPLICATE_BITS": "40"}, "FLIP_NEAR_DUPLICATE_BITS=40 must lie in [0, 32]"),
    ],
)
def test_invalid_settings_fail_naming_their_variable(monkeypatch, key, env, message):
    clear_settings(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as failure:
        set_up(build_resources()[key])
    assert message in str(failure.value)


@pytest.mark.parametrize(
    "key, name",
    [("caption_corpus", "FLIP_CAPTION_CORPUS"), ("keyword_mining", "FLIP_KEYWORD_REVIEW"), ("caption_filter", "FLIP_CAPTION_REVIEW"),
     ("caption_filter", "FLIP_CAPTION_TRAINING_LABELS")],
)
def test_missing_files_fail_naming_their_variable(monkeypatch, tmp_path, key, name):
    clear_settings(monkeypatch)
    monkeypatch.setenv(name, str(tmp_path / "missing.csv"))
    with pytest.raises(FileNotFoundError, match=f"{name}: .*missing.csv"):
        set_up(build_resources()[key])


def test_a_field_without_variable_is_named_by_its_resource():
    defaults = build_resources()["caption_filter"]
    resource = CaptionFilterResource(
        base_model=defaults.base_model, review_file=defaults.review_file, celeba_attr="unused", batch_size=0
    )
    with pytest.raises(ValueError, match=r"CaptionFilterResource\.batch_size=0 must be at least 1"):
        set_up(resource)


def test_a_secret_travels_only_as_its_variable(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-shown")
    for key in ("llm", "aigc"):
        resource = build_resources()[key]
        assert isinstance(resource.api_key, EnvVar) and "sk-never-shown" not in repr(resource)
