"""Calls to an OpenAI-compatible API (OpenAI, vLLM, a llama.cpp server) for the pipeline.

What every stage needs around the bare `openai` client:
- a persistent response cache (SQLite) keyed by endpoint, model and request, so a re-run
  or a retried shard pays nothing twice; only the calling thread writes it (one writer);
- a deadline on each attempt as a whole (connect, send, headers, body): the HTTP client's
  timeout bounds each read, and a server that trickles a byte at a time never trips it;
- retries with exponential backoff on 429, 5xx, timeouts and refused connections, honouring
  Retry-After; a server still unreachable after them raises LLMUnavailable, since answering
  every caption with a fallback would hide an outage. A request still answered with a 5xx gets
  an error reply (SERVER_ERROR): a server may fail on one prompt and answer every other. But
  5xx on every request of a call, or on max_server_errors_in_a_row requests with none answered
  in between, is an outage again and raises (early: a dead server does not cost a whole shard
  of retries). LLMUnavailable.requests names the requests it concerns, so the caller can name
  its samples;
- a per-run budget (requests sent, tokens spent), after which calls return an error reply;
- bounded concurrency (a thread pool of `concurrency` requests in flight).

The API key is handed to the client and never appears in an error, log line or reply.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpcore2
import httpx2
import openai

# Sent to servers that need no key (llama.cpp, vLLM on loopback): the openai client insists on one.
NO_KEY = "no-key-needed"
BUDGET_EXHAUSTED = "budget_exhausted"
BAD_RESPONSE = "bad_response"
SERVER_ERROR = "server_error"
CHAT = "chat.completions"  # the endpoint, as the cache keys name it


class LLMConfigError(ValueError):
    """A setting is missing or wrong; the message names the environment variable."""


class LLMUnavailable(RuntimeError):
    """The server could not be reached (or kept failing) after every retry. `requests`: the
    positions, in the call's list, of the requests that failed so."""

    def __init__(self, message: str, requests: tuple[int, ...] = ()):
        super().__init__(message)
        self.requests = requests


def is_loopback(base_url: str) -> bool:
    host = urlparse(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(base_url: str, api_key: str | None, url_setting: str = "OPENAI_BASE_URL") -> None:
    """Fail fast on a malformed URL, and on a remote URL without a key (never echoing a key)."""
    parsed = urlparse(base_url or "")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise LLMConfigError(f"{url_setting}={base_url!r} is not an http(s) URL such as http://127.0.0.1:8080/v1")
    if not api_key and not is_loopback(base_url):
        raise LLMConfigError(
            f"OPENAI_API_KEY is not set, but {url_setting} points to the remote host {parsed.hostname}: "
            "set the key, or point the URL at a local server"
        )


class _Deadline(threading.local):
    """When the calling thread's request must be done (time.monotonic()); None: no deadline."""

    at: float | None = None


_DEADLINE = _Deadline()


def _time_left(timeout: float | None, expired: type[Exception]) -> float | None:
    """The timeout of one socket operation: the HTTP client's, cut to what is left of the deadline."""
    if _DEADLINE.at is None:
        return timeout
    left = _DEADLINE.at - time.monotonic()
    if left <= 0:
        raise expired("the request ran past its deadline")
    return left if timeout is None else min(timeout, left)


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """What this thread sends inside must be done within `seconds` from now."""
    _DEADLINE.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _DEADLINE.at = None


class _DeadlineStream(httpcore2.NetworkStream):
    def __init__(self, stream: httpcore2.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname: str | None = None, timeout: float | None = None):
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, _time_left(timeout, httpcore2.ConnectTimeout)))

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore2.SyncBackend):
    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        timeout = _time_left(timeout, httpcore2.ConnectTimeout)
        return _DeadlineStream(super().connect_tcp(host, port, timeout, local_address, socket_options))


class _DeadlineTransport(httpx2.HTTPTransport):
    """httpx2's transport on sockets whose every connect, write and read waits at most what is
    left of the calling thread's deadline. Passing a transport makes httpx2 ignore proxies from
    the environment, so requests go direct, as they do to a local server."""

    def __init__(self) -> None:
        super().__init__()
        # httpx2 has no setting for the network backend: a pool of its kind, on ours.
        self._pool = httpcore2.ConnectionPool(
            ssl_context=httpx2.create_ssl_context(), max_connections=None, keepalive_expiry=5.0, network_backend=_DeadlineBackend()
        )


class ResponseCache:
    """Successful replies by request key, in one SQLite file that survives runs."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # WAL and a busy timeout: two processes (two shards at once) may share the file.
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL, created REAL)")

    @staticmethod
    def key(endpoint: str, model: str, request: dict) -> str:
        payload = json.dumps({"endpoint": endpoint, "model": model, "request": request}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def get(self, key: str) -> dict | None:
        row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def forget(self, key: str) -> None:
        self._db.execute("DELETE FROM replies WHERE key = ?", (key,))

    def put(self, key: str, reply: dict) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO replies (key, reply, created) VALUES (?, ?, ?)", (key, json.dumps(reply), time.time())
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        self._db.close()


@dataclass
class Budget:
    """Per-run limits; 0 means unlimited. Cache hits cost nothing."""

    max_requests: int = 0
    max_tokens: int = 0
    requests: int = 0
    tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def acquire(self) -> bool:
        """Reserve one request; False when the budget is spent."""
        with self._lock:
            if (self.max_requests and self.requests >= self.max_requests) or (
                self.max_tokens and self.tokens >= self.max_tokens
            ):
                return False
            self.requests += 1
            return True

    def spend(self, tokens: int) -> None:
        with self._lock:
            self.tokens += tokens


@dataclass
class Reply:
    """One answer: `text` is the message content (chat) or the base64 image (images); `error`
    a short reason when there is none, `detail` what happened ("HTTP 500 after 5 attempts")."""

    text: str | None = None
    error: str | None = None
    detail: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


@dataclass
class CallStats:
    requests_sent: int = 0
    cache_hits: int = 0
    retries: int = 0
    failed: int = 0
    prompt_tokens: int = 0  # paid in this run (cache hits excluded)
    completion_tokens: int = 0
    cached_tokens: int = 0  # tokens cache hits saved

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 20.0
    # Requests in a row that end in a 5xx, none answered in between, that make an outage.
    max_server_errors_in_a_row: int = 5

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        try:
            if retry_after is not None:
                return min(float(retry_after), self.max_backoff_s)
        except ValueError:
            pass  # an HTTP date, or garbage: use our own backoff
        return min(self.backoff_s * 2**attempt, self.max_backoff_s) * (0.5 + random.random() / 2)


class LLMClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        cache: ResponseCache,
        budget: Budget | None = None,
        concurrency: int = 2,
        timeout_s: float = 60.0,
        retry: RetryPolicy = RetryPolicy(),
    ):
        check_endpoint(base_url, api_key)
        self.base_url = base_url
        self.cache = cache
        self.budget = budget or Budget()
        self.concurrency = max(1, concurrency)
        self.retry = retry
        self.timeout_s = timeout_s
        self.stats = CallStats()
        self._lock = threading.Lock()
        # Retries are ours (they know the budget and the cache); the client's own are off.
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or NO_KEY, timeout=timeout_s, max_retries=0,
            http_client=openai.DefaultHttpxClient(transport=_DeadlineTransport()),
        )  # fmt: skip

    def close(self) -> None:
        self._client.close()
        self.cache.close()

    def list_models(self) -> list[str]:
        try:
            with _deadline(self.timeout_s):
                return [m.id for m in self._client.models.list()]
        except openai.APIConnectionError as exc:
            raise LLMUnavailable(f"cannot reach {self.base_url}: {type(exc).__name__}") from exc
        except (openai.APIError, ValueError, TypeError, AttributeError) as exc:
            raise LLMUnavailable(f"{self.base_url} did not list its models ({type(exc).__name__})") from exc

    def resolve_model(self, configured: str, setting: str = "FLIP_LLM_MODEL") -> str:
        """The configured model, or the only one the server serves (llama.cpp serves one)."""
        if configured:
            return configured
        models = self.list_models()
        if len(models) != 1:
            raise LLMConfigError(f"{setting} is not set and {self.base_url} serves {len(models)} models: {models[:10]}")
        return models[0]

    # -- chat ---------------------------------------------------------------------------------
    def chat_many(
        self,
        model: str,
        conversations: Sequence[list[dict]],
        max_tokens: Sequence[int],
        temperature: float = 0.0,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Reply]:
        """One reply per conversation, in order; cached ones first, the rest `concurrency` at a time."""
        requests = self._chat_requests(conversations, max_tokens, temperature)

        def call(request: dict) -> Reply:
            response = self._client.chat.completions.create(model=model, **request)
            text = response.choices[0].message.content
            if not isinstance(text, str):
                raise TypeError("no message content")
            usage = response.usage
            return Reply(
                text=text,
                prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            )

        return self._run(CHAT, model, requests, call, progress)

    def forget_chats(
        self, model: str, conversations: Sequence[list[dict]], max_tokens: Sequence[int], temperature: float = 0.0
    ) -> None:
        """Drop the cached replies to these conversations (found useless), so that a re-run asks again."""
        for request in self._chat_requests(conversations, max_tokens, temperature):
            self.cache.forget(ResponseCache.key(CHAT, model, request))

    @staticmethod
    def _chat_requests(conversations: Sequence[list[dict]], max_tokens: Sequence[int], temperature: float) -> list[dict]:
        return [
            {"messages": messages, "max_tokens": int(limit), "temperature": temperature}
            for messages, limit in zip(conversations, max_tokens, strict=True)
        ]

    # -- images -------------------------------------------------------------------------------
    def generate_images(self, model: str, prompts: Sequence[str], size: str = "1024x1024") -> list[Reply]:
        """Base64-encoded images, one per prompt (DALL-E 3 compatible images API, b64_json)."""
        requests = [{"prompt": prompt, "size": size, "n": 1, "response_format": "b64_json"} for prompt in prompts]

        def call(request: dict) -> Reply:
            response = self._client.images.generate(model=model, **request)
            data = response.data[0].b64_json
            if not isinstance(data, str) or not data:
                raise TypeError("no b64_json image")
            return Reply(text=data)

        return self._run("images.generations", model, requests, call, None)

    # -- machinery ----------------------------------------------------------------------------
    def _run(self, endpoint: str, model: str, requests: list[dict], call, progress) -> list[Reply]:
        replies: list[Reply | None] = [None] * len(requests)
        pending: dict[str, list[int]] = {}  # identical requests are sent once
        for i, request in enumerate(requests):
            key = ResponseCache.key(endpoint, model, request)
            hit = self.cache.get(key)
            if hit is not None:
                replies[i] = Reply(**{**hit, "cached": True})
                self.stats.cache_hits += 1
                self.stats.cached_tokens += replies[i].prompt_tokens + replies[i].completion_tokens
            else:
                pending.setdefault(key, []).append(i)
        done = len(requests) - sum(len(v) for v in pending.values())
        # Every request of the call (no cache hit), or enough in a row, failing with a 5xx is an outage.
        outage_after = min(self.retry.max_server_errors_in_a_row, len(requests))
        server_errors: list[int] = []  # the requests in a row, since the last answer
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="llm")
        try:
            futures = {pool.submit(self._with_retries, call, requests[idx[0]]): key for key, idx in pending.items()}
            for future in as_completed(futures):
                key = futures[future]
                try:
                    reply = future.result()  # what finished is already cached
                except LLMUnavailable as exc:
                    exc.requests = tuple(pending[key])
                    raise
                if reply.error is None:
                    self.cache.put(key, asdict(reply))
                    server_errors.clear()
                elif reply.error == SERVER_ERROR:
                    server_errors.extend(pending[key])
                    if len(server_errors) >= outage_after:
                        raise LLMUnavailable(
                            f"{self.base_url}: {reply.detail} on {len(server_errors)} requests in a row, none answered "
                            "in between: the server is failing, not the requests",
                            tuple(sorted(server_errors)),
                        )
                for i in pending[key]:
                    replies[i] = reply
                done += len(pending[key])
                if progress:
                    progress(done, len(requests))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return replies  # type: ignore[return-value]

    def _with_retries(self, call, request: dict) -> Reply:
        problem = ""
        for attempt in range(self.retry.max_retries + 1):
            if attempt:
                with self._lock:
                    self.stats.retries += 1
            if not self.budget.acquire():
                return self._failed(BUDGET_EXHAUSTED)
            with self._lock:
                self.stats.requests_sent += 1
            retry_after, server_error = None, False
            try:
                with _deadline(self.timeout_s):
                    reply = call(request)
            except (openai.RateLimitError, openai.InternalServerError) as exc:
                problem = f"HTTP {exc.status_code}"
                retry_after = exc.response.headers.get("retry-after")
                server_error = isinstance(exc, openai.InternalServerError)
            except openai.APITimeoutError:
                problem = "timeout"
            except openai.APIConnectionError as exc:
                problem = f"connection failed ({type(exc.__cause__ or exc).__name__})"
            except openai.APIStatusError as exc:
                # Any other 4xx: this request is at fault, and sending it again will not help.
                return self._failed(f"http_{exc.status_code}")
            except (openai.APIResponseValidationError, ValueError, TypeError, AttributeError, IndexError, KeyError):
                problem = BAD_RESPONSE  # garbage body or shape: may be transient, but is not an outage
            else:
                tokens = reply.prompt_tokens + reply.completion_tokens
                self.budget.spend(tokens)
                with self._lock:
                    self.stats.prompt_tokens += reply.prompt_tokens
                    self.stats.completion_tokens += reply.completion_tokens
                return reply
            if attempt < self.retry.max_retries:
                time.sleep(self.retry.delay(attempt, retry_after))
        what = f"{problem} after {self.retry.max_retries + 1} attempts"
        if problem == BAD_RESPONSE:
            return self._failed(BAD_RESPONSE)
        if server_error:  # this request may be the trouble; _run tells an outage
            return self._failed(SERVER_ERROR, what)
        raise LLMUnavailable(f"{self.base_url}: {what}")

    def _failed(self, reason: str, detail: str | None = None) -> Reply:
        with self._lock:
            self.stats.failed += 1
        return Reply(error=reason, detail=detail)
