"""Rehearsal helper for scripts/gpu-check.sh: a folder that holds only what the GPU machine has.

The GPU machine's Python has torch, transformers, peft, accelerate, pyarrow, pandas, rich, typer and
pytest (and what they require), nothing else. This links exactly those distributions (and their
requirements, resolved from this interpreter's metadata) from this interpreter's site-packages into
FOLDER, so that `python -S` with `PYTHONPATH=FOLDER:...` sees what the GPU machine sees; the carried
wheels then have to supply the rest. Run: python scripts/gpu_sim_site.py FOLDER
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
from pathlib import Path

from packaging.markers import Marker

GPU_MACHINE = ["torch", "transformers", "peft", "accelerate", "pyarrow", "pandas", "rich", "typer", "pytest"]
# required by transformers 5.24 here, maybe not by the GPU machine's 5.17: not assumed, the wheels carry them
NOT_ASSUMED = {"pydantic", "pydantic-core", "annotated-types", "typing-inspection"}


def _name(text: str) -> str:
    return re.split(r"[ <>=!~;\[(]", text.strip(), maxsplit=1)[0].lower().replace("_", "-")


def requirements(dist: str) -> list[str]:
    """`dist`'s unconditional requirements (markers evaluated; extras left out)."""
    try:
        reqs = md.requires(dist) or []
    except md.PackageNotFoundError:
        return []
    out = []
    for req in reqs:
        if ";" in req and not Marker(req.split(";", 1)[1]).evaluate({"extra": ""}):
            continue
        out.append(_name(req))
    return out


def closure(roots: list[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        dist = stack.pop()
        if dist not in seen:
            seen.add(dist)
            stack += requirements(dist)
    return seen


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    linked = 0
    for dist in sorted(closure(GPU_MACHINE) - NOT_ASSUMED):
        try:
            files = md.distribution(dist).files or []
        except md.PackageNotFoundError:
            continue
        for top in {f.parts[0] for f in files if f.parts and f.parts[0] not in ("..", "bin")}:
            source = Path(str(files[0].locate())).parents[len(files[0].parts) - 1] / top
            target = folder / top
            if source.exists() and not target.exists():
                target.symlink_to(source)
                linked += 1
    print(f"{folder}: {linked} entries of {len(closure(GPU_MACHINE))} distributions (the GPU machine's set)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
