"""Caption denoising speed.

    python -m bench.denoising [--captions 40] [--repeats 5]

Pre-clean throughput on every caption of the caption corpus (FLIP_CAPTION_CORPUS: the LAION
files; one process, so per core; target >= 50,000 captions/s). Then, on its face captions (a
seed word of the paper in the caption) through the pipeline's language model (OPENAI_BASE_URL,
FLIP_LLM_MODEL, or a local llama.cpp server with SmolLM2-135M started here): captions/s of the bare server round-trip (the same
messages, the plain openai client), of the denoiser with a cold response cache and with a
warm one. One JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import openai

from bench import pipeline_resource
from flip_assets.core.curation.captions import read_caption_corpus
from flip_assets.core.curation.denoiser import answer_budget, build_messages, denoise_rows
from flip_assets.core.curation.keywords import SEED_WORDS, KeywordMatcher
from flip_assets.core.curation.llm_client import NO_KEY, LLMClient, ResponseCache
from flip_assets.core.curation.llm_server import LocalLLMServer
from flip_assets.core.curation.precleaning import preclean


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


def bench_preclean(captions: list[str], repeats: int) -> None:
    best = float("inf")
    preclean(captions[0])
    for _ in range(repeats):
        start = time.perf_counter()
        for caption in captions:
            preclean(caption)
        best = min(best, time.perf_counter() - start)
    chars = sum(map(len, captions))
    removed = 1 - sum(len(preclean(c)) for c in captions) / chars
    emit(bench="preclean", captions=len(captions), captions_per_s_per_core=round(len(captions) / best),
         target=50_000, chars_removed_share=round(removed, 4))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--captions", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    emit(machine={"cpus": os.cpu_count(), "gpu": False})

    corpus = [c for path in pipeline_resource("caption_corpus").files for c in read_caption_corpus(path) if c]
    bench_preclean(corpus, args.repeats)

    matcher = KeywordMatcher(SEED_WORDS)
    faces = sorted({c for c in corpus if matcher.find(c) and 0 < len(preclean(c)) <= 600})
    random.Random(args.seed).shuffle(faces)
    faces = faces[: args.captions]
    rows = [{"key": str(i), "caption": c, "keywords": matcher.find(c), "kept": True} for i, c in enumerate(faces)]

    llm = pipeline_resource("llm")
    with nullcontext(None) if llm.base_url else LocalLLMServer() as server:
        base_url = llm.base_url or server.base_url
        raw = openai.OpenAI(base_url=base_url, api_key=llm.api_key or NO_KEY, max_retries=0)
        model = llm.model or raw.models.list().data[0].id
        sources = [preclean(c) for c in faces]
        raw.chat.completions.create(model=model, messages=build_messages(sources[0]), max_tokens=8)  # load, warm
        start = time.perf_counter()
        for source in sources:
            raw.chat.completions.create(model=model, messages=build_messages(source), max_tokens=answer_budget(source), temperature=0.0)
        bare = len(sources) / (time.perf_counter() - start)
        emit(bench="bare_server_round_trip", model=model, captions=len(sources), captions_per_s=round(bare, 3))

        with tempfile.TemporaryDirectory() as cache_dir:
            for label in ("denoiser_cold_cache", "denoiser_warm_cache"):
                client = LLMClient(base_url, llm.api_key, ResponseCache(Path(cache_dir) / "replies.sqlite"), concurrency=1)
                start = time.perf_counter()
                out = denoise_rows(rows, client, model)
                rate = len(rows) / (time.perf_counter() - start)
                client.close()
                emit(bench=label, captions=len(rows), captions_per_s=round(rate, 3), vs_bare=round(rate / bare, 3),
                     by_llm=sum(r["outcome"] == "llm" for r in out), cache_hits=client.stats.cache_hits,
                     requests_sent=client.stats.requests_sent)  # fmt: skip


if __name__ == "__main__":
    main()
