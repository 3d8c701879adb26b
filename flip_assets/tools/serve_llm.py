"""Serve the default language model (SmolLM2-135M-Instruct through llama.cpp, see
core/curation/llm_server.py) on 127.0.0.1 with an OpenAI-compatible API.

    python -m flip_assets.tools.serve_llm     # serve until Ctrl-C, printing the env to export

With --shared it is the server the pipeline's runs share (SharedLLMServer starts it so).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flip_assets.core.curation.llm_server import LOCAL_IDLE_S, LocalLLMServer, serve_shared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, help="serve for SharedLLMServer users, with this state folder")
    parser.add_argument("--idle-s", type=float, default=LOCAL_IDLE_S, help="with --shared: stop after this long without a user")
    args = parser.parse_args(argv)
    if args.shared:
        serve_shared(args.shared, args.idle_s)
        return 0
    with LocalLLMServer() as server:
        print(f"export OPENAI_BASE_URL={server.base_url} FLIP_LLM_MODEL={server.alias}", flush=True)
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
