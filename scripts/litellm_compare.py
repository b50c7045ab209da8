"""Estimation speed: ours against LiteLLM's ``token_counter``, on the benchmark's conversation mix
(chats whose every turn re-sends the history; `chargeback.tools.bench.mix.conversation_mix`).

    .venv/bin/python scripts/litellm_compare.py [--conversations 50] [--turns 10] [--repeat 5]

Outside the package and the test suite. The first run makes a virtual environment of its own
(``.litellm-venv``, ``litellm<1.109`` from PyPI); every run of LiteLLM is offline: its model cost
map from its own copy (``LITELLM_LOCAL_MODEL_COST_MAP=True``), its tokenizer from the tiktoken
files it ships (``litellm_core_utils/tokenizers``), and HTTP(S) proxies pointed at a closed port
so that any attempt to reach the network fails instead.

Both sides get the same calls, parsed beforehand: ours `estimate` (with the token-count cache,
as the Function runs it, empty at the start of each repetition), LiteLLM ``token_counter`` on
the request's messages plus ``token_counter`` on the answer's text. CPU seconds, medians.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chargeback.tools.bench import conversation_mix, load_corpus  # noqa: E402
from chargeback.tools.bench.estimation import (  # noqa: E402
    chat_calls,
    estimated_calls,
    time_estimates,
)
from chargeback.tools.bench.mix import DEFAULT_CORPUS  # noqa: E402

LITELLM = "litellm<1.109"
TARGET = 10.0

_CHILD = """
import json, statistics, sys, time
from litellm import token_counter

calls = json.load(open(sys.argv[1]))
repeat = int(sys.argv[2])

def once():
    start = time.process_time()
    tokens = 0
    for call in calls:
        tokens += token_counter(model=call["model"], messages=call["messages"])
        tokens += token_counter(model=call["model"], text=call["completion"])
    return time.process_time() - start, tokens

once()  # warm up: the tokenizer loads
runs = [once() for _ in range(repeat)]
print(json.dumps({"seconds": statistics.median(s for s, _ in runs), "tokens": runs[0][1]}))
"""


def _venv(path: Path) -> Path:
    python = path / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*install, LITELLM], check=True)
    return python


def _offline_env() -> dict[str, str]:
    env = dict(os.environ)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    # Nothing listens on port 9: whatever tries to fetch something fails at once.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[name] = "http://127.0.0.1:9"
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    env.pop("CUSTOM_TIKTOKEN_CACHE_DIR", None)
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--venv", type=Path, default=ROOT / ".litellm-venv")
    args = parser.parse_args()

    samples = conversation_mix(load_corpus(ROOT / DEFAULT_CORPUS), args.conversations, args.turns)
    calls = estimated_calls(samples)
    ours = time_estimates(calls, args.repeat)
    python = _venv(args.venv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "calls.json"
        path.write_text(json.dumps(chat_calls(calls)))
        done = subprocess.run(
            [str(python), "-c", _CHILD, str(path), str(args.repeat)],
            capture_output=True,
            text=True,
            check=True,
            env=_offline_env(),
        )
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    version = subprocess.run(
        [str(python), "-c", "from importlib.metadata import version; print(version('litellm'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ratio = theirs["seconds"] / ours.cached
    print(
        f"conversation mix: {len(calls)} calls ({args.conversations} chats of {args.turns} "
        f"turns), parsed beforehand; CPU seconds, median of {args.repeat}"
    )
    print(
        f"ours: {ours.cached * 1000:.1f} ms with the token-count cache "
        f"({ours.uncached * 1000:.1f} ms without), {ours.tokens} tokens"
    )
    print(
        f"LiteLLM {version} token_counter: {theirs['seconds'] * 1000:.1f} ms, "
        f"{theirs['tokens']} tokens (it counts every OpenAI model with cl100k_base)"
    )
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(f"litellm_compare: ours is {ratio:.1f}x faster (target {TARGET:.0f}x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
