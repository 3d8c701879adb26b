"""Settings: one rule from environment variables to resource fields, defaults kept once (in the
core settings or the resource field), errors naming the variable, and the README's table in step."""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from dagster import EnvVar

from flip_assets.core.curation.caption_classifier import TrainingSettings
from flip_assets.core.curation.caption_training import WebDatasetSettings
from flip_assets.core.curation.denoiser import DenoiseSettings
from flip_assets.core.curation.keywords import Word2VecSettings
from flip_assets.core.curation.llm_client import RetryPolicy
from flip_assets.defs.curation.resources import CaptionTrainingResource, KeywordMiningResource, LLMResource
from flip_assets.defs.curation.s05_face_text_pairs import face_text_pairs
from flip_assets.defs.curation.s06_denoised_captions import denoising_eval_set
from flip_assets.defs.resources import SHARED, build_resources

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
    classifier = CaptionTrainingResource(base_model="unused", celeba_attr="unused", review_file="unused")
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
            if not info.is_required():
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
        "FLIP_ABLATION_SEEDS": "3,4", "FLIP_EVAL_RESAMPLES": 200,
    }  # fmt: skip
    expected = {}
    for i, (name, targets) in enumerate(sorted(env_fields().items())):
        kind = targets[0][0].field_type(targets[0][1])
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
        ("caption_training", {"FLIP_CLASSIFIER_MAX_SAMPLES": "0"}, "FLIP_CLASSIFIER_MAX_SAMPLES=0 must be at least 1"),
        ("caption_training", {"FLIP_CLASSIFIER_MAX_LENGTH": "4"}, "FLIP_CLASSIFIER_MAX_LENGTH=4 must lie in [8, 512]"),
        ("caption_filter", {"FLIP_CLASSIFIER_MAX_LENGTH": "4"}, "FLIP_CLASSIFIER_MAX_LENGTH=4 must lie in [8, 512]"),
        ("caption_training", {"FLIP_FACE_EVAL_SAMPLES": "0"}, "FLIP_FACE_EVAL_SAMPLES=0 must be at least 1"),
        ("caption_filter", {"FLIP_TEXT_THRESHOLD": "1"}, "FLIP_TEXT_THRESHOLD=1.0 must lie in [0, 1) (unset: the chosen threshold)"),
        ("caption_training", {"FLIP_CLASSIFIER_DEV_PRECISION": "1.5"}, "FLIP_CLASSIFIER_DEV_PRECISION=1.5 must lie in [0, 1]"),
        ("caption_training", {"FLIP_CLASSIFIER_MIN_RECALL": "1.5"}, "FLIP_CLASSIFIER_MIN_RECALL=1.5 must lie in [0, 1]"),
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
    [("caption_corpus", "FLIP_CAPTION_CORPUS"), ("keyword_mining", "FLIP_KEYWORD_REVIEW"), ("caption_training", "FLIP_CAPTION_REVIEW"),
     ("caption_training", "FLIP_CAPTION_TRAINING_LABELS")],
)
def test_missing_files_fail_naming_their_variable(monkeypatch, tmp_path, key, name):
    clear_settings(monkeypatch)
    monkeypatch.setenv(name, str(tmp_path / "missing.csv"))
    with pytest.raises(FileNotFoundError, match=f"{name}: .*missing.csv"):
        set_up(build_resources()[key])


def test_a_field_without_variable_is_named_by_its_resource():
    defaults = build_resources()["caption_training"]
    resource = CaptionTrainingResource(
        base_model=defaults.base_model, review_file=defaults.review_file, celeba_attr="unused", batch_size=0
    )
    with pytest.raises(ValueError, match=r"CaptionTrainingResource\.batch_size=0 must be at least 1"):
        set_up(resource)


def test_a_secret_travels_only_as_its_variable(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-shown")
    for key in ("llm", "aigc"):
        resource = build_resources()[key]
        assert isinstance(resource.api_key, EnvVar) and "sk-never-shown" not in repr(resource)


def test_scoring_reads_no_training_file(monkeypatch, tmp_path):
    """face_text_pairs (per shard) and denoising_eval_set score with the trained classifier: their
    resources set up without the files the classifier was trained and measured from."""
    clear_settings(monkeypatch)
    for name in ("FLIP_CLASSIFIER_BASE", "FLIP_CAPTION_REVIEW", "FLIP_CAPTION_TRAINING_LABELS", "FLIP_CELEBA_ATTR"):
        monkeypatch.setenv(name, str(tmp_path / "missing"))
    resources = build_resources()
    for scoring in (face_text_pairs, denoising_eval_set):
        for key in scoring.required_resource_keys - {"io_manager"}:
            set_up(resources[key])


def test_an_unset_override_is_none_and_zero_is_a_value(monkeypatch, tmp_path):
    """FLIP_TEXT_THRESHOLD unset: the threshold saved with the classifier; set, even to 0, itself."""
    clear_settings(monkeypatch)
    assert build_resources()["caption_filter"].keep_threshold is None
    assert build_resources()["caption_training"].dev_precision is None
    monkeypatch.setenv("FLIP_TEXT_THRESHOLD", "0")
    assert build_resources()["caption_filter"].threshold(tmp_path / "no_classifier_needed") == 0.0


# --- one default per setting ----------------------------------------------------------------------

# The Python code of the pipeline and of its benchmarks; settings.py is the rule itself (it reads
# every variable of a resource's ENV).
SOURCES = sorted([*(REPO_ROOT / "flip_assets").rglob("*.py"), *(REPO_ROOT / "bench").glob("*.py")])
RULE = REPO_ROOT / "flip_assets" / "defs" / "settings.py"


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"


def environment_reads(path) -> list[tuple[str, int]]:
    """(variable, line) of each read of the environment in a file: os.environ.get(X),
    os.getenv(X), os.environ[X]; X a literal or a module constant of the file."""
    tree = ast.parse(path.read_text())
    constants = {
        target.id: node.value.value
        for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets if isinstance(target, ast.Name)
    }  # fmt: skip
    reads = []
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if (node.func.attr == "get" and _is_environ(node.func.value)) or (
                node.func.attr == "getenv" and isinstance(node.func.value, ast.Name) and node.func.value.id == "os"
            ):
                name = node.args[0]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
            name = node.slice
        if name is not None:
            value = name.value if isinstance(name, ast.Constant) else constants.get(getattr(name, "id", None))
            reads.append((value or f"<unresolved {ast.unparse(name)}>", node.lineno))
    return reads


def test_each_variable_is_read_in_one_place_and_the_benchmarks_read_none():
    """A resource's variables are read only through its ENV (settings.py), any other in one place
    with one default; the benchmarks take every setting from the pipeline's resources."""
    reads: dict[str, list[str]] = {}
    for path in SOURCES:
        if path != RULE:
            for name, line in environment_reads(path):
                reads.setdefault(name, []).append(f"{path.relative_to(REPO_ROOT)}:{line}")
    assert reads, "no read found: the scan is broken"
    beside = {name: where for name, where in reads.items() if name in env_fields()}
    assert not beside, f"read beside the resource that owns it (a second default): {beside}"
    twice = {name: where for name, where in reads.items() if len(where) > 1}
    assert not twice, f"read in several places: {twice}"
    bench = {name: where for name, where in reads.items() if any(w.startswith("bench/") for w in where)}
    assert not bench, f"benchmarks read the environment instead of build_resources(): {bench}"


def test_a_variable_setting_several_fields_gives_them_one_default():
    for name, targets in env_fields().items():
        defaults = {(info.is_required(), repr(info.default)) for cls, field in targets for info in [cls.model_fields[field]]}
        assert len(defaults) == 1, f"{name}: {targets} default to {defaults}"


# Defaults that were copied: each is written once in the Python code (tokens, so comments and
# docstrings may mention them).
SETTING_LITERALS = {
    "the default FLIP_HOME": lambda t: t.type == tokenize.STRING and ".flip_home" in t.string,
    "the checkout's shared data folder": lambda t: t.type == tokenize.STRING and t.string in ('"shared"', "'shared'"),
    "max_pixels": lambda t: t.type == tokenize.NUMBER and ast.literal_eval(t.string) == 40_000_000,
}


@pytest.mark.parametrize("what", SETTING_LITERALS)
def test_a_default_is_written_once(what):
    found = [
        f"{path.relative_to(REPO_ROOT)}:{token.start[0]}"
        for path in SOURCES
        for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
        if SETTING_LITERALS[what](token)
    ]
    assert len(found) == 1, f"{what} is written {len(found)} times: {found}"


def checkout_defaults(monkeypatch) -> dict[str, str]:
    """{variable: default} of the settings whose default is a path of this checkout (its folder,
    or ../shared): an installed wheel has no checkout, so an image must set them."""
    clear_settings(monkeypatch)
    # Installed packages (the venv, which may lie inside the checkout) come with the image too.
    package, installed = REPO_ROOT / "flip_assets", Path(sys.prefix).resolve()
    found = {}
    for resource in build_resources().values():
        for field, name in type(resource).ENV.items():
            value = getattr(resource, field)
            paths = [Path(p) for p in value.split(",")] if isinstance(value, str) and value else []
            checkout = [p for p in paths if not p.resolve().is_relative_to(installed)]
            if checkout and all(p.is_relative_to(SHARED) or (p.is_relative_to(REPO_ROOT) and not p.is_relative_to(package)) for p in checkout):
                found[name] = value
    return found


def dockerfile_env() -> dict[str, str]:
    """The FLIP_* variables docker/Dockerfile's ENV instructions set, with their values."""
    text = (REPO_ROOT / "docker" / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = [line for line in text.splitlines() if line.startswith("ENV ")]
    return dict(re.findall(r"\b(FLIP_[A-Z0-9_]+)=(\S+)", " ".join(instructions)))


def test_makefile_and_image_set_only_what_the_code_cannot_default(monkeypatch):
    """The Makefile runs the checkout, whose defaults the code has: it sets no FLIP_ variable. The
    image (an installed wheel, no checkout) sets exactly the settings whose default is a path
    of the checkout; docker compose, where it must repeat one (an empty variable counts as
    unset), repeats the image's."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert not re.findall(r"^\s*(?:export\s+)?(FLIP_\w+)\s*[:?+]?=", makefile, re.M), "the Makefile sets a FLIP_ variable"
    needed, image = checkout_defaults(monkeypatch), dockerfile_env()
    assert "FLIP_HOME" in needed and "FLIP_SOURCE" in needed, needed
    assert sorted(image) == sorted(needed), f"image sets {sorted(image)}, needs {sorted(needed)}"
    compose = dict(re.findall(r"\$\{(FLIP_[A-Z0-9_]+):-([^}]+)\}", (REPO_ROOT / "docker" / "compose.yaml").read_text()))
    assert compose["FLIP_HOME"] == image["FLIP_HOME"]
