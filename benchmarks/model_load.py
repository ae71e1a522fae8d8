"""Loading the embedded SmolLM2 (a GGUF file): palaestra's first and later loads against transformers' own.

Anchor: transformers' GGUF loading as palaestra did it before the cache (`from_pretrained(folder,
gguf_file=...)` for the model and the tokenizer), which de-quantizes every tensor on every load. Then
`load_model_and_tokenizer("smollm2-135m")` with an empty cache (converts, writes the cache) and again
(reads the cache). Each load runs in a fresh process, timed around the load call only (imports excluded).

Run: python benchmarks/model_load.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).parents[1]

_ANCHOR = """
import time
from transformers import AutoModelForCausalLM, AutoTokenizer
from palaestra.agents.models import embedded_gguf
path = embedded_gguf()
t = time.perf_counter()
AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
print(time.perf_counter() - t)
"""

_PALAESTRA = """
import time
from transformers import AutoModelForCausalLM, AutoTokenizer  # imported before the clock, as in the anchor
from palaestra.agents.models import load_model_and_tokenizer
t = time.perf_counter()
load_model_and_tokenizer("smollm2-135m")
print(time.perf_counter() - t)
"""


def _timed(code: str, cache: Path) -> float:
    env = {**os.environ, "PALAESTRA_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="loads of each kind (median reported)")
    args = parser.parse_args()
    rows: dict[str, list[float]] = {"anchor": [], "first": [], "later": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp)
            rows["anchor"].append(_timed(_ANCHOR, cache))
            rows["first"].append(_timed(_PALAESTRA, cache))
            rows["later"].append(_timed(_PALAESTRA, cache))
    anchor = statistics.median(rows["anchor"])
    labels = {
        "anchor": "transformers GGUF load (anchor)",
        "first": "palaestra, first load (converts, caches)",
        "later": "palaestra, later load (cache)",
    }
    print(f"| load (model + tokenizer) | median s of {args.repeats} | vs anchor |")
    print("|---|---|---|")
    for key, label in labels.items():
        median = statistics.median(rows[key])
        print(f"| {label} | {median:.2f} | {median / anchor:.2f}x |")
    print(json.dumps({k: [round(v, 3) for v in vs] for k, vs in rows.items()}))


if __name__ == "__main__":
    main()
