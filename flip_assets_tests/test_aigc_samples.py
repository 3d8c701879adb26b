"""aigc_samples: the real client code against a local OpenAI-compatible server (the paid API
is the only thing faked) that answers with real CelebA faces at 1024x1024. Source images
are the real raw shard images."""

import base64
import io
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import make_resources, run_assets
from dagster import DagsterInstance
from PIL import Image

from flip_assets.core.io import storage
from flip_assets.core.curation.aigc import FACE_PROMPT, GENERAL_PROMPT, sample_pairs
from flip_assets.defs.curation.resources import AIGCResource
from flip_assets.defs.curation.s01_raw_shards import raw_shards
from flip_assets.defs.curation.s07_aigc_samples import NO_BACKEND, aigc_samples
from test_denoised_captions import PAIRS_SCHEMA, checks, failure_text, materialization

SHARD = "00000"


@pytest.fixture(scope="module")
def pairs_source(tmp_path_factory):
    """raw_shards of the real shard 00000 and face_text_pairs over its first 8 images (6 kept)."""
    home = tmp_path_factory.mktemp("flip_home")
    with DagsterInstance.ephemeral() as inst:
        assert run_assets([raw_shards], make_resources(home), inst, SHARD).success
    raw = [r for r in storage.read_table(storage.partition_path(home, "raw_shards", SHARD)).to_pylist() if r["status"] == "ok"]
    rows = [
        {
            "key": r["key"], "url": r["url"], "caption": r["caption"], "width": r["width"], "height": r["height"],
            "text_score": 0.9 if i < 6 else 0.1, "keywords": [], "kept": i < 6, "drop_reason": None if i < 6 else "low_text_score",
        }
        for i, r in enumerate(raw[:8])
    ]  # fmt: skip
    storage.write_table(storage.partition_path(home, "face_text_pairs", SHARD), pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA))
    return home


@pytest.fixture
def pairs_home(pairs_source, tmp_path):
    """A FLIP_HOME of its own (an empty reply cache) with those inputs."""
    for name in ("raw_shards", "face_text_pairs"):
        shutil.copytree(pairs_source / name, tmp_path / name)
    return tmp_path


def aigc_resources(home, base_url: str, **aigc):
    return {**make_resources(home), "aigc": AIGCResource(base_url=base_url, vision_model="fake-vision", image_model="fake-image", **aigc)}


def run_config(samples=3, seed=7):
    return {"ops": {"aigc_samples": {"config": {"samples": samples, "seed": seed}}}}


def materialize(assets, resources, instance, config=None):
    from dagster import materialize as dagster_materialize

    return dagster_materialize(assets, resources=resources, instance=instance, run_config=config or run_config(), raise_on_error=False)


def test_recaptions_and_generates_1024_images_then_reruns_from_cache(pairs_home, fake_openai, instance):
    result = materialize([aigc_samples], aigc_resources(pairs_home, fake_openai.base_url), instance)
    assert result.success, failure_text(result)
    assert checks(result) == {"every_sample_accounted_for": True, "images_decode_at_1024": True}
    rows = storage.read_table(storage.partition_path(pairs_home, "aigc_samples")).to_pylist()
    pairs = storage.read_table(storage.partition_path(pairs_home, "face_text_pairs", SHARD)).to_pylist()
    kept = {p["key"]: p["caption"] for p in pairs if p["kept"]}
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    for r in rows:
        assert kept[r["source_key"]] == r["source_caption"]
        assert r["caption"] == f"{r['general_caption']} {r['face_caption']}"
        assert r["face_caption"].startswith("A ") and r["general_caption"].startswith("A photo of a person (image ")
        with Image.open(io.BytesIO(r["image"])) as img:
            assert img.format == "PNG" and img.size == (1024, 1024)
        assert (r["vision_model"], r["image_model"]) == ("fake-vision", "fake-image")
        assert r["cost_usd"] == pytest.approx(0.04 + 2 * 100 * 0.15 / 1e6 + 2 * 5 * 0.6 / 1e6, abs=2e-5)

    # Each sample: two vision requests carrying the source image, one image request.
    vision = [body for path, body in fake_openai.requests if path.endswith("/chat/completions")]
    assert len(vision) == 6 and fake_openai.count("/images/generations") == 3
    prompts = sorted(next(p["text"] for p in body["messages"][0]["content"] if p["type"] == "text") for body in vision)
    assert prompts == sorted([GENERAL_PROMPT, FACE_PROMPT] * 3)
    for body in vision:
        url = next(p["image_url"]["url"] for p in body["messages"][0]["content"] if p["type"] == "image_url")
        assert url.startswith("data:image/jpeg;base64,")
        assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).format == "JPEG"
    image_bodies = [body for path, body in fake_openai.requests if path.endswith("/images/generations")]
    assert {(b["size"], b["response_format"], b["model"]) for b in image_bodies} == {("1024x1024", "b64_json", "fake-image")}
    meta = materialization(result, "aigc_samples")
    assert meta["spent_usd_this_run"] == pytest.approx(sum(r["cost_usd"] for r in rows))

    again = materialize([aigc_samples], aigc_resources(pairs_home, fake_openai.base_url), instance)
    assert again.success
    assert len(fake_openai.requests) == 9, "a re-run pays nothing twice"
    meta = materialization(again, "aigc_samples")
    assert meta["spent_usd_this_run"] == 0 and meta["api_cache_hits"] == 9
    rerun = storage.read_table(storage.partition_path(pairs_home, "aigc_samples")).to_pylist()
    assert [r["image_sha256"] for r in rerun] == [r["image_sha256"] for r in rows] and all(r["cached"] for r in rerun)


def test_no_backend_materializes_empty_with_a_note(pairs_home, instance):
    result = materialize([aigc_samples], aigc_resources(pairs_home, ""), instance)
    assert result.success and all(checks(result).values())
    assert storage.read_table(storage.partition_path(pairs_home, "aigc_samples")).num_rows == 0
    meta = materialization(result, "aigc_samples")
    assert meta["note"] == NO_BACKEND and meta["samples"] == 0


def test_wrong_image_size_fails_the_blocking_check(pairs_home, fake_openai, instance, celeba_faces_1024):
    small = io.BytesIO()
    Image.open(io.BytesIO(celeba_faces_1024[0][0])).resize((512, 512)).save(small, format="PNG")
    fake_openai.faces = [(small.getvalue(), "A woman smiling.")]
    result = materialize([aigc_samples], aigc_resources(pairs_home, fake_openai.base_url), instance, run_config(samples=1, seed=99))
    assert not result.success
    assert checks(result)["images_decode_at_1024"] is False
    # Not published (blocking check failed): the refused file is kept aside for inspection.
    assert not storage.partition_path(pairs_home, "aigc_samples").exists()
    [row] = pq.read_table(storage.rejected_path(storage.partition_path(pairs_home, "aigc_samples"))).to_pylist()
    assert row["status"] == "image:size 512x512"


def test_api_errors_are_recorded_per_sample(pairs_home, fake_openai, instance):
    fake_openai.always = "400"  # e.g. a prompt the provider's safety system rejects
    result = materialize([aigc_samples], aigc_resources(pairs_home, fake_openai.base_url), instance, run_config(samples=2, seed=5))
    assert result.success and all(checks(result).values())
    rows = storage.read_table(storage.partition_path(pairs_home, "aigc_samples")).to_pylist()
    assert [r["status"] for r in rows] == ["recaption:http_400"] * 2 and all(r["image"] is None for r in rows)


def test_server_errors_on_every_request_fail_the_run(pairs_home, fake_openai, instance):
    """A 5xx on one request is that sample's error; on every request it is an outage, not a green run."""
    fake_openai.always = "500"
    res = aigc_resources(pairs_home, fake_openai.base_url, max_retries=0)
    result = materialize([aigc_samples], res, instance, run_config(samples=1, seed=5))
    assert not result.success and "HTTP 500 after 1 attempts on 2 requests in a row" in failure_text(result)


def test_remote_backend_without_key_fails_fast(pairs_home, instance):
    result = materialize([aigc_samples], aigc_resources(pairs_home, "https://api.openai.com/v1"), instance)
    assert not result.success
    assert "OPENAI_API_KEY is not set, but FLIP_AIGC_BASE_URL points to the remote host api.openai.com" in failure_text(result)


def test_sampling_is_seeded_and_skips_unkept_pairs():
    pairs = [{"key": f"{i:09d}", "kept": i % 3 != 0} for i in range(30)]
    first = sample_pairs(pairs, 5, seed=1)
    assert first == sample_pairs(list(reversed(pairs)), 5, seed=1)
    assert first != sample_pairs(pairs, 5, seed=2)
    assert all(p["kept"] for p in first) and len(sample_pairs(pairs, 100, seed=1)) == 20
