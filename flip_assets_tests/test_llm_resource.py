"""The language model without OPENAI_BASE_URL: the resource serves SmolLM2 with a local
llama.cpp server that runs share, and that stops itself once no run has used it for a while."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import REPO_ROOT, run_assets
from dagster import MaterializeResult, asset, materialize
from test_denoised_captions import LAION_CAPTIONS, SHARD, failure_text, laion_caption, materialization, write_pairs

from flip_assets.core.curation.llm_server import MODEL_ALIAS, SharedLLMServer
from flip_assets.defs.curation.s06_denoised_captions import denoised_captions
from flip_assets.defs.resources import LLMResource, build_resources
from flip_assets.defs.storage import FlipStorage


def serves(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def stops(base_url: str, within_s: float = 60) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not serves(base_url):
            return True
        time.sleep(0.5)
    return False


def without_openai_base_url(monkeypatch) -> None:
    for name in ("OPENAI_BASE_URL", "FLIP_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)


def test_denoised_captions_without_openai_base_url(tmp_path, instance, monkeypatch):
    """It failed at launch with a config error; now the run serves the model itself."""
    without_openai_base_url(monkeypatch)
    monkeypatch.setenv("FLIP_HOME", str(tmp_path))
    monkeypatch.setenv("FLIP_LLM_LOCAL_IDLE_S", "1")
    resources = {key: value for key, value in build_resources().items() if key in ("flip_storage", "llm", "perplexity")}
    write_pairs(tmp_path, [(laion_caption(LAION_CAPTIONS[0]), True)])
    result = run_assets([denoised_captions], resources, instance, SHARD)
    assert result.success, failure_text(result)
    meta = materialization(result)
    assert meta["llm_requests_sent"] >= 1 and meta["by_llm"] + meta["fallback"] == 1
    assert meta["base_url"].startswith("http://127.0.0.1:") and meta["model"] == MODEL_ALIAS
    # No run uses it any more: it stops itself.
    assert stops(meta["base_url"])
    assert not (tmp_path / "llm_server" / "server.json").exists()


def test_runs_share_the_local_server_and_it_outlives_no_user(tmp_path, instance):
    """Runs in sequence reuse one server; it keeps serving while anyone uses it, then stops."""
    @asset
    def served_model(flip_storage: FlipStorage, llm: LLMResource) -> MaterializeResult:
        client = llm.client(flip_storage)
        try:
            return MaterializeResult(metadata={"endpoint": llm.endpoint, "model": client.resolve_model("")})
        finally:
            client.close()

    def run_once() -> dict:
        resources = {"llm": llm, "flip_storage": FlipStorage(home=str(tmp_path))}
        result = materialize([served_model], resources=resources, instance=instance, raise_on_error=False)
        assert result.success, failure_text(result)
        return materialization(result, "served_model")

    # The server's folder is the storage's: FLIP_HOME/llm_server.
    llm = LLMResource(local_idle_s=5)
    first, second = run_once(), run_once()
    assert first == second and first["model"] == MODEL_ALIAS
    url = first["endpoint"]
    # Another user (a run in another process, say) holds a lease well past the idle time.
    other = SharedLLMServer(tmp_path / "llm_server", idle_s=5)
    assert other.acquire() == url
    time.sleep(8)
    assert serves(url)
    other.release()
    assert stops(url)
    assert not (tmp_path / "llm_server" / "server.json").exists()


def test_a_killed_server_takes_llama_cpp_along_and_the_next_user_starts_another(tmp_path):
    first = SharedLLMServer(tmp_path, idle_s=1)
    url = first.acquire()
    try:
        os.kill(json.loads((tmp_path / "server.json").read_text())["pid"], signal.SIGKILL)
        assert stops(url)  # no orphaned llama.cpp
        # server.json still names the dead server: the next user sees it is gone.
        second = SharedLLMServer(tmp_path, idle_s=1)
        replacement = second.acquire()
        assert serves(replacement)
        second.release()
    finally:
        first.release()
    assert stops(replacement)


def test_no_url_and_an_object_store_home_fails_fast_naming_both_settings(tmp_path):
    """The local server's lease locks need a folder: with FLIP_HOME an object store, the run
    fails naming FLIP_HOME and OPENAI_BASE_URL before any server starts."""
    home = "s3://flip-outputs/flip"
    with pytest.raises(ValueError, match=f"FLIP_HOME='{home}' is an object store: set OPENAI_BASE_URL"):
        LLMResource().client(FlipStorage(home=home, local_cache=str(tmp_path)))
    assert not any(tmp_path.rglob("server.json"))


def test_launching_the_shard_pipeline_needs_no_openai_base_url(tmp_path):
    """A backfill or the sensor launches runs of the real code location: its run config must
    resolve without OPENAI_BASE_URL (it failed with a config error before any run existed)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "FLIP_LLM_MODEL")}
    script = (
        "from dagster import validate_run_config\n"
        "from flip_assets.definitions import defs\n"
        "validate_run_config(defs.resolve_job_def('shard_pipeline'), {})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env={**env, "FLIP_HOME": str(tmp_path)}, cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_killed_run_leaves_no_server_behind(tmp_path):
    """The lease dies with its process: a run killed midway does not keep the server alive."""
    script = (
        "import sys; from flip_assets.core.curation.llm_server import SharedLLMServer\n"
        f"server = SharedLLMServer({str(tmp_path)!r}, idle_s=1)\n"
        "print(server.acquire(), flush=True)\n"
        "sys.stdin.read()\n"
    )
    user = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = user.stdout.readline().strip()
        time.sleep(3)
        assert serves(url)
    finally:
        user.kill()
        user.wait()
    assert stops(url)
