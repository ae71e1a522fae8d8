#!/usr/bin/env bash
# The wheels scripts/gpu-check.sh carries to the GPU machine, downloaded into an ignored folder.
#
# The GPU machine has no network; its Python 3.12 has torch, transformers, peft, accelerate, pyarrow,
# pandas, rich, typer and pytest. What the checked paths import beyond those travels as wheels with the
# working tree (the `carry` limit is 64 MiB for everything carried). The folder is not committed: the
# wheels are ~20 MB of binaries; this script rebuilds it (PyPI through pip, here):
#
#   bash scripts/gpu-wheels.sh                    # .gpu-wheels/, for the GPU machine (CPython 3.12)
#   bash scripts/gpu-wheels.sh /tmp/w 3.11        # the same set for this machine's Python (rehearsal)
#
# The set was found by importing the checked paths with only the GPU machine's packages on the path
# (scripts/gpu_sim_site.py; `bash scripts/gpu-check.sh --rehearse` does it) and adding what failed.
# The versions are the ones the CPU test suite runs with. Sizes: see the listing this script prints.
set -euo pipefail
DIR=${1:-.gpu-wheels}
PY=${2:-3.12}
PIP=${PIP:-.venv/bin/pip}
[ -x "$PIP" ] || PIP=/work/main/.venv/bin/pip
WHEELS=(
    # palaestra's own imports (envs, config, trainers)
    gymnasium==1.4.0 cloudpickle==3.1.3 farama-notifications==0.0.6
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
    math-verify==0.9.0 latex2sympy2-extended==1.11.0 antlr4-python3-runtime==4.13.2
    # TRL's GRPOTrainer, the anchor of benchmarks/grpo_vs_trl.py, and datasets, which it imports
    trl==1.16.0 datasets==5.2.0 dill==0.4.1 xxhash==4.1.0 multiprocess==0.70.19
    requests==2.34.2 certifi==2026.10.19.post1 charset-normalizer==3.5.3 urllib3==2.8.0
)
mkdir -p "$DIR"
"$PIP" download --quiet --no-deps --only-binary=:all: --python-version "$PY" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    -d "$DIR" "${WHEELS[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
ls -l "$DIR"/*.whl | awk '{printf "%8.1f KiB  %s\n", $5 / 1024, $9}'
du -sh "$DIR"
