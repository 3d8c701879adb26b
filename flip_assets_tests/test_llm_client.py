"""The OpenAI-compatible client: retries, cache, budget, concurrency and failures, against a
local HTTP server that fails on script, a port nobody listens on, and the real llama.cpp server."""

import time

import pytest

from flip_assets.core.curation.llm_client import (
    BAD_RESPONSE,
    BUDGET_EXHAUSTED,
    Budget,
    LLMClient,
    LLMConfigError,
    LLMUnavailable,
    ResponseCache,
    SERVER_ERROR,
    RetryPolicy,
    check_endpoint,
)
from flip_assets.core.curation.llm_server import free_port

FAST_RETRY = RetryPolicy(max_retries=2, backoff_s=0.01)


def conversation(text: str) -> list[dict]:
    return [{"role": "user", "content": f"<caption>{text}</caption>"}]


def make_client(base_url, tmp_path, api_key=None, **kwargs) -> LLMClient:
    kwargs.setdefault("retry", FAST_RETRY)
    return LLMClient(base_url, api_key, ResponseCache(tmp_path / "replies.sqlite"), **kwargs)


def test_retries_429_and_500_then_succeeds(fake_openai, tmp_path):
    fake_openai.faults.extend(["429", "500"])
    client = make_client(fake_openai.base_url, tmp_path)
    [reply] = client.chat_many("fake-model", [conversation("a smiling woman")], [20])
    assert reply.text == "a smiling woman" and reply.error is None
    assert client.stats.retries == 2 and client.stats.requests_sent == 3
    assert fake_openai.count("/chat/completions") == 3


def test_second_run_is_served_from_the_cache(fake_openai, tmp_path):
    texts = ["a smiling woman", "a man with a beard", "a smiling woman"]
    first = make_client(fake_openai.base_url, tmp_path)
    replies = first.chat_many("fake-model", [conversation(t) for t in texts], [20] * 3)
    first.close()
    assert [r.text for r in replies] == texts
    assert fake_openai.count("/chat/completions") == 2  # the duplicate is sent once

    second = make_client(fake_openai.base_url, tmp_path)
    again = second.chat_many("fake-model", [conversation(t) for t in texts], [20] * 3)
    assert [r.text for r in again] == texts and all(r.cached for r in again)
    assert second.stats.requests_sent == 0 and second.stats.cache_hits == 3
    assert second.stats.cached_tokens > 0
    assert fake_openai.count("/chat/completions") == 2
    # The key covers model and parameters: another model is a new request.
    second.chat_many("other-model", [conversation(texts[0])], [20])
    assert fake_openai.count("/chat/completions") == 3


def test_garbage_answers_become_an_error_reply_and_are_not_cached(fake_openai, tmp_path):
    fake_openai.always = "garbage"
    client = make_client(fake_openai.base_url, tmp_path)
    [reply] = client.chat_many("fake-model", [conversation("a girl")], [20])
    assert reply.error == BAD_RESPONSE and reply.text is None
    assert fake_openai.count("/chat/completions") == FAST_RETRY.max_retries + 1
    fake_openai.always = None
    [reply] = client.chat_many("fake-model", [conversation("a girl")], [20])
    assert reply.text == "a girl" and not reply.cached


def test_client_error_is_not_retried(fake_openai, tmp_path):
    fake_openai.faults.append("400")
    client = make_client(fake_openai.base_url, tmp_path)
    [reply] = client.chat_many("fake-model", [conversation("a boy")], [20])
    assert reply.error == "http_400" and fake_openai.count("/chat/completions") == 1


def test_a_request_the_server_always_fails_gets_an_error_reply_and_the_others_their_answers(fake_openai, tmp_path):
    fake_openai.fault_for = lambda body: "500" if "bald" in body["messages"][-1]["content"] else None
    texts = ["a smiling woman", "a bald man", "a girl with glasses"]
    client = make_client(fake_openai.base_url, tmp_path)
    replies = client.chat_many("fake-model", [conversation(t) for t in texts], [20] * 3)
    assert [r.text for r in replies] == ["a smiling woman", None, "a girl with glasses"]
    assert (replies[1].error, replies[1].detail) == (SERVER_ERROR, "HTTP 500 after 3 attempts")
    assert fake_openai.count("/chat/completions") == 2 + FAST_RETRY.max_retries + 1
    assert client.stats.failed == 1
    # Not cached: a later run asks again (and a cached answer beside it is an answer: no outage).
    again = client.chat_many("fake-model", [conversation("a bald man"), conversation("a smiling woman")], [20] * 2)
    assert again[0].error == SERVER_ERROR and again[1].cached
    assert fake_openai.count("/chat/completions") == 2 + 2 * (FAST_RETRY.max_retries + 1)


def test_server_errors_on_every_request_are_an_outage_naming_the_requests(fake_openai, tmp_path):
    fake_openai.always = "503"
    client = make_client(fake_openai.base_url, tmp_path)
    with pytest.raises(LLMUnavailable, match=r"HTTP 503 after 3 attempts on 3 requests in a row") as failure:
        client.chat_many("fake-model", [conversation(f"face {i}") for i in range(3)], [20] * 3)
    assert sorted(failure.value.requests) == [0, 1, 2]


def test_server_errors_in_a_row_stop_a_long_run_early(fake_openai, tmp_path):
    fake_openai.always = "500"
    retry = RetryPolicy(max_retries=0, backoff_s=0.01, max_server_errors_in_a_row=3)
    client = make_client(fake_openai.base_url, tmp_path, retry=retry, concurrency=1)
    with pytest.raises(LLMUnavailable, match=r"HTTP 500 after 1 attempts on 3 requests in a row") as failure:
        client.chat_many("fake-model", [conversation(f"eyes {i}") for i in range(20)], [20] * 20)
    assert len(failure.value.requests) == 3 and fake_openai.count("/chat/completions") < 6


def test_a_request_that_still_fails_is_named(fake_openai, tmp_path):
    fake_openai.always = "429"
    client = make_client(fake_openai.base_url, tmp_path, concurrency=1)
    with pytest.raises(LLMUnavailable, match=r"HTTP 429 after 3 attempts") as failure:
        client.chat_many("fake-model", [conversation("a man"), conversation("a woman")], [20] * 2)
    assert failure.value.requests == (0,)


def test_server_down_raises_after_retries(tmp_path):
    client = make_client(f"http://127.0.0.1:{free_port()}/v1", tmp_path, api_key="sk-test-secret-never-shown")
    started = time.monotonic()
    with pytest.raises(LLMUnavailable, match="connection failed") as failure:
        client.chat_many("m", [conversation("a face")], [20])
    assert time.monotonic() - started < 10
    assert "sk-test-secret" not in str(failure.value)
    assert client.stats.requests_sent == FAST_RETRY.max_retries + 1


def test_slow_server_times_out(fake_openai, tmp_path):
    fake_openai.always, fake_openai.sleep_s = "sleep", 3.0
    client = make_client(fake_openai.base_url, tmp_path, timeout_s=0.3, retry=RetryPolicy(max_retries=1, backoff_s=0.01))
    with pytest.raises(LLMUnavailable, match="timeout after 2 attempts"):
        client.chat_many("fake-model", [conversation("a face")], [20])


def test_trickling_server_is_cut_off_at_the_deadline(fake_openai, tmp_path):
    # One byte every 0.2 s: no read waits the 1 s timeout, so only a deadline on the whole
    # request stops an attempt (the fake gives up after 6 s, bounding the test).
    fake_openai.always, fake_openai.trickle_s, fake_openai.sleep_s = "trickle", 0.2, 6.0
    client = make_client(fake_openai.base_url, tmp_path, timeout_s=1.0, retry=RetryPolicy(max_retries=1, backoff_s=0.01))
    started = time.monotonic()
    with pytest.raises(LLMUnavailable, match="timeout after 2 attempts"):
        client.chat_many("fake-model", [conversation("a face")], [20])
    assert 2.0 <= time.monotonic() - started < 4.0
    assert fake_openai.count("/chat/completions") == 2
    # A prompt server is unaffected: the deadline is per attempt, not left over from the last.
    fake_openai.always = None
    [reply] = client.chat_many("fake-model", [conversation("a face")], [20])
    assert reply.text == "a face"


@pytest.mark.slow
def test_real_server_too_slow_for_the_timeout_and_then_fine(llm_server, tmp_path):
    impatient = make_client(llm_server.base_url, tmp_path, timeout_s=0.001, retry=RetryPolicy(max_retries=0))
    with pytest.raises(LLMUnavailable, match="timeout"):
        impatient.chat_many(llm_server.alias, [conversation("smiling woman")], [8])
    patient = make_client(llm_server.base_url, tmp_path)
    assert patient.resolve_model("") == llm_server.alias
    [reply] = patient.chat_many(llm_server.alias, [conversation("smiling woman")], [8])
    assert reply.error is None and reply.text.strip() and reply.prompt_tokens > 0


def test_budget_limits_requests_and_tokens(fake_openai, tmp_path):
    client = make_client(fake_openai.base_url, tmp_path, budget=Budget(max_requests=2))
    replies = client.chat_many("fake-model", [conversation(f"face {i}") for i in range(4)], [20] * 4)
    assert sorted(r.error or "ok" for r in replies) == [BUDGET_EXHAUSTED, BUDGET_EXHAUSTED, "ok", "ok"]
    assert fake_openai.count("/chat/completions") == 2

    # Each fake answer costs 100 prompt tokens + its words: 150 tokens allow two requests.
    tokens = make_client(fake_openai.base_url, tmp_path / "t", budget=Budget(max_tokens=150), concurrency=1)
    replies = tokens.chat_many("fake-model", [conversation(f"eyes {i}") for i in range(3)], [20] * 3)
    assert [r.error for r in replies] == [None, None, BUDGET_EXHAUSTED]


def test_concurrency_is_bounded(fake_openai, tmp_path):
    fake_openai.always, fake_openai.sleep_s = "sleep", 0.3
    client = make_client(fake_openai.base_url, tmp_path, concurrency=2)
    replies = client.chat_many("fake-model", [conversation(f"nose {i}") for i in range(6)], [20] * 6)
    assert all(r.error is None for r in replies)
    assert fake_openai.max_in_flight == 2


def test_endpoint_settings_fail_fast_without_echoing_a_key():
    check_endpoint("http://127.0.0.1:8080/v1", None)
    check_endpoint("http://localhost:8000/v1", None)
    check_endpoint("https://api.openai.com/v1", "sk-x")
    with pytest.raises(LLMConfigError, match="OPENAI_API_KEY is not set.*api.openai.com"):
        check_endpoint("https://api.openai.com/v1", None)
    with pytest.raises(LLMConfigError, match="FLIP_AIGC_BASE_URL='api.openai.com' is not an http"):
        check_endpoint("api.openai.com", "sk-x", "FLIP_AIGC_BASE_URL")


def test_model_defaults_to_the_one_the_server_serves(fake_openai, tmp_path):
    client = make_client(fake_openai.base_url, tmp_path)
    assert client.resolve_model("") == "fake-model"
    assert client.resolve_model("gpt-4o-mini") == "gpt-4o-mini"
