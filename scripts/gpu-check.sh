#!/usr/bin/env bash
# The GPU check (issue 22): every GPU path of palaestra once on a real GPU, in one run of at most 8 min.
#
#   bash scripts/gpu-wheels.sh                 # here, once: the wheels below into .gpu-wheels/ (ignored)
#   OUT=/some/dir bash scripts/gpu-check.sh    # on the GPU machine, .gpu-wheels carried with the tree
#                                              # (the device tool: command "bash scripts/gpu-check.sh",
#                                              # carry [".gpu-wheels"], timeout_s 540; $OUT is set there)
#   bash scripts/gpu-check.sh --rehearse       # here, on the CPU: the same steps, tiny sizes
#
# Steps (each with its own time limit, cut to what is left of the budget; a step that fails or times out
# does not stop the next; progress lines go to stdout and $OUT/progress.log as each step starts and ends):
#   1. wheels     install the carried wheels the machine lacks into a scratch --target folder
#   2. env        versions, GPU (nvidia-smi), what was installed                  -> env.txt
#   3. gpu-tests  pytest -m gpu on CUDA: bf16 vs fp32 step, shared-prefix pass, sampler vs generate,
#                 worker-thread policy, FSDP2 in one process, GPU checkpoint resumed on the CPU
#                                                                                 -> gpu-tests.log, .xml
#   4. grpo-*     benchmarks/grpo_vs_trl.py --device cuda, Qwen2.5-0.5B then 1.5B shapes (random
#                 weights, real vocabulary; benchmarks/shapes.py), against TRL's GRPOTrainer
#                                                                                 -> grpo-*.log, .json
#   5. rollout-*  benchmarks/gpu_rollout.py --backends hf: palaestra's hf rollout against a raw batched
#                 `generate` loop, same shapes                                    -> rollout-*.log, .json
#   6. async-*    benchmarks/async_vs_sync.py: rollout.pipeline=async against sync (hf backend, one GPU),
#                 Qwen2.5-0.5B's shape, ArithRetry and its log-normal-latency version   -> async-*.log
#   summary.md    one line per step: exit status, seconds, and the log's last lines
#
# The GPU machine: one H200, Python 3.12 with torch 2.11 (CUDA 13), transformers 5.17, peft, accelerate,
# pyarrow, pandas, rich, typer, pytest; no network. The carried wheels (bash scripts/gpu-wheels.sh,
# 2026-12-05; 6.4 MiB in all, the carry limit is 64 MiB; a wheel whose distribution the machine already
# has is not installed):
#       2211.8 KiB  pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
#        926.0 KiB  trl-1.16.0-py3-none-any.whl
#        594.0 KiB  datasets-5.2.0-py3-none-any.whl
#        483.3 KiB  pydantic-2.14.4-py3-none-any.whl
#        465.1 KiB  gymnasium-1.4.0-py3-none-any.whl
#        461.2 KiB  xxhash-4.1.0-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl
#        251.1 KiB  charset_normalizer-3.5.3-cp312-cp312-manylinux1_x86_64.manylinux_2_28_x86_64.manylinux_2_5_x86_64.whl
#        204.2 KiB  latex2sympy2_extended-1.11.0-py3-none-any.whl
#        146.8 KiB  multiprocess-0.70.19-py312-none-any.whl
#        141.1 KiB  antlr4_python3_runtime-4.13.2-py3-none-any.whl
#        132.5 KiB  urllib3-2.8.0-py3-none-any.whl
#        130.9 KiB  certifi-2026.10.19.post1-py3-none-any.whl
#        117.2 KiB  dill-0.4.1-py3-none-any.whl
#         71.4 KiB  requests-2.34.2-py3-none-any.whl
#         29.3 KiB  math_verify-0.9.0-py3-none-any.whl
#         21.9 KiB  cloudpickle-3.1.3-py3-none-any.whl
#         14.5 KiB  typing_inspection-0.4.5-py3-none-any.whl
#         13.1 KiB  annotated_types-0.8.0-py3-none-any.whl
#          2.8 KiB  farama_notifications-0.0.6-py3-none-any.whl
# Not carried, because no checked path imports them: gguf (the embedded SmolLM2, ~98 MB, does not fit
# anyway; the checks build their models), matplotlib, scipy, tensorboard (reports, statistics and
# TensorBoard logging, all off here), vllm (far over the limit).
#
# Environment: OUT (output folder; default runs/gpu-check), PYTHON (the interpreter with torch; default
# python3, or .venv/bin/python when rehearsing), GPU_CHECK_BUDGET_S (default 480), GPU_WHEELS (default
# .gpu-wheels; the rehearsal builds its own for this Python), GPU_CHECK_OVERLAY (rehearsal only: a folder
# put first on the path, e.g. the GPU machine's transformers release installed with pip --target).
set -uo pipefail
cd "$(dirname "$0")/.."
REHEARSE=0
[ "${1:-}" = "--rehearse" ] && REHEARSE=1
OUT=${OUT:-runs/gpu-check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUDGET=${GPU_CHECK_BUDGET_S:-480}
SCRATCH=$(mktemp -d /tmp/gpu-check.XXXXXX)
START=$(date +%s)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$SCRATCH/tmp"
export HF_HOME=$SCRATCH/hf PYTHONUNBUFFERED=1 TMPDIR=$SCRATCH/tmp

log() { echo "[gpu-check +$(($(date +%s) - START))s] $*" | tee -a "$OUT/progress.log"; }

# step NAME LIMIT_S CMD...: run CMD with its output in $OUT/NAME.log, within LIMIT_S and the budget left
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - ($(date +%s) - START)))
    if [ "$left" -lt 15 ]; then
        log "SKIP  $name: ${left}s of the ${BUDGET}s budget left"
        echo "| $name | skipped (budget) | - | |" >>"$OUT/summary.md"
        return 0
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    log "START $name (limit ${limit}s)"
    local t0 rc
    t0=$(date +%s)
    if declare -F "$1" >/dev/null; then  # a function of this script (short, local): no timeout
        "$@" >"$OUT/$name.log" 2>&1
    else
        timeout -k 10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    fi
    rc=$?
    local took=$(($(date +%s) - t0)) what="exit $rc"
    [ "$rc" = 124 ] && what="TIMED OUT after ${limit}s"
    log "END   $name: $what, ${took}s"
    tail -n 4 "$OUT/$name.log" | sed 's/^/    /'
    local last
    last=$(grep -v '^\s*$' "$OUT/$name.log" | tail -n 1 | tr '|' '/' | cut -c1-150)
    echo "| $name | $what | $took | $last |" >>"$OUT/summary.md"
}

# -- the interpreter and the carried wheels ------------------------------------------------------------
if [ "$REHEARSE" = 1 ]; then
    # the GPU machine's view, on this CPU: a bare venv (no site-packages) that sees only the GPU machine's
    # packages (scripts/gpu_sim_site.py links them from .venv), so the wheels must supply the rest
    HOST=${PYTHON:-.venv/bin/python}
    [ -x "$HOST" ] || HOST=/work/main/.venv/bin/python
    "$HOST" -m venv --without-pip "$SCRATCH/venv"
    # inside the venv's prefix, as site-packages are on the GPU machine (dill, which datasets uses to
    # fingerprint tables, pickles classes of modules under sys.prefix by reference)
    "$HOST" scripts/gpu_sim_site.py "$SCRATCH/venv/machine" >/dev/null
    PY=$SCRATCH/venv/bin/python
    PIP=("$HOST" -m pip)
    GPU_WHEELS=${GPU_WHEELS:-$SCRATCH/wheels}
    PYVER=$("$HOST" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    PIP="$HOST -m pip" bash scripts/gpu-wheels.sh "$GPU_WHEELS" "$PYVER" >/dev/null
    BASE=${GPU_CHECK_OVERLAY:+$GPU_CHECK_OVERLAY:}$SCRATCH/venv/machine:
    DEVICE=cpu
else
    PY=${PYTHON:-python3}
    "$PY" -c "import torch" 2>/dev/null || PY=python
    PIP=("$PY" -m pip)
    GPU_WHEELS=${GPU_WHEELS:-.gpu-wheels}
    BASE=
    DEVICE=cuda
fi
export PYTHONPATH=$BASE$SCRATCH/site:$PWD
log "output in $OUT; python $PY; device $DEVICE; budget ${BUDGET}s; rehearse=$REHEARSE"
echo "| step | result | s | last line of its log |" >"$OUT/summary.md"
echo "|---|---|---|---|" >>"$OUT/summary.md"

install_wheels() {
    local missing=()
    for wheel in "$GPU_WHEELS"/*.whl; do
        local dist
        dist=$(basename "$wheel" | cut -d- -f1)
        if "$PY" -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$dist" 2>/dev/null; then
            echo "present: $dist ($("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$dist"))"
        else
            missing+=("$wheel")
        fi
    done
    echo "installing ${#missing[@]} wheels into $SCRATCH/site"
    [ "${#missing[@]}" = 0 ] && return 0
    if ! "${PIP[@]}" install --quiet --no-deps --no-index --target "$SCRATCH/site" "${missing[@]}"; then
        # no pip (or it refuses): a wheel is a zip of what goes into site-packages
        echo "pip failed; unpacking the wheels instead"
        "$PY" -c "import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]" \
            "$SCRATCH/site" "${missing[@]}"
    fi
    ls "$SCRATCH/site"
    # what the checks import, with the installed wheels: fails here rather than in every later step
    "$PY" -c "import palaestra.trainers, palaestra.agents.hf, gymnasium, math_verify, pydantic, trl, datasets; print('imports ok')"
}
step wheels 90 install_wheels

env_report() {
    "$PY" - <<'PY'
import importlib.metadata as m, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("cuda available", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
for d in ["transformers", "peft", "accelerate", "trl", "datasets", "pydantic", "gymnasium", "math-verify", "pytest"]:
    try:
        print(d, m.version(d))
    except m.PackageNotFoundError:
        print(d, "MISSING")
PY
    nvidia-smi 2>&1 | head -20 || true
}
step env 60 env_report
cp "$OUT/env.log" "$OUT/env.txt"

# -- the gpu-marked tests ------------------------------------------------------------------------------
GPU_TESTS=$(grep -rl --include='test_*.py' 'from tests.gpu import' tests | sort)
PYTEST=("$PY" -m pytest -m gpu -p no:cacheprovider -o addopts= -rA $GPU_TESTS)
if [ "$REHEARSE" = 1 ]; then
    # without CUDA they skip (as in CI); then the same tests on the CPU prove their plumbing
    step gpu-tests-skip 120 "${PYTEST[@]}" --junitxml "$OUT/gpu-tests-skip.xml"
    step gpu-tests 300 env PALAESTRA_GPU_TEST_DEVICE=cpu "${PYTEST[@]}" --junitxml "$OUT/gpu-tests.xml"
else
    step gpu-tests 180 "${PYTEST[@]}" --junitxml "$OUT/gpu-tests.xml"
fi

# -- the GPU benchmarks --------------------------------------------------------------------------------
if [ "$REHEARSE" = 1 ]; then
    SHAPES_RUN=(qwen2-tiny)
    GRPO_SIZE=(--steps 1 --warmup 1 --prompts-per-step 2 --group-size 2 --max-new-tokens 8)
    ROLL_SIZE=(--episodes 4 --max-new-tokens 8 --repeats 1)
else
    SHAPES_RUN=(qwen2.5-0.5b qwen2.5-1.5b)
    GRPO_SIZE=(--steps 6 --warmup 2 --prompts-per-step 4 --group-size 8 --max-new-tokens 64)
    ROLL_SIZE=(--episodes 64 --max-new-tokens 64 --repeats 2)
fi
for shape in "${SHAPES_RUN[@]}"; do
    step "grpo-$shape" 150 "$PY" benchmarks/grpo_vs_trl.py --device "$DEVICE" --model "$shape" \
        "${GRPO_SIZE[@]}" --json "$OUT/grpo-$shape.json"
    for worker in "$SCRATCH"/tmp/grpo_vs_trl_*/*.log; do  # left behind when the step failed or timed out
        [ -f "$worker" ] && mkdir -p "$OUT/grpo-$shape-workers" && mv "$worker" "$OUT/grpo-$shape-workers/"
    done
    rm -rf "$SCRATCH"/tmp/grpo_vs_trl_*
    step "rollout-$shape" 90 "$PY" benchmarks/gpu_rollout.py --backends hf --device "$DEVICE" \
        --shape "$shape" --cache "$SCRATCH/models" "${ROLL_SIZE[@]}" --json "$OUT/rollout-$shape.json"
done

# -- the asynchronous pipeline against the synchronous trainer (issue 18) --------------------------------
if [ "$REHEARSE" = 1 ]; then
    # the 3M test model: qwen2-tiny's 151k-token head takes ~1 min a step on this CPU
    ASYNC_RUN=(--model tiny-random --seeds 0 --steps 2 --max-new-tokens 8 --eval-episodes 4)
    ASYNC_SHAPE=tiny
else
    ASYNC_RUN=(--shape qwen2.5-0.5b --cache "$SCRATCH/models" --dtype bfloat16 --precision bf16 --seeds 0
        --steps 6 --max-new-tokens 48 --eval-episodes 8 --lr 1e-6)
    ASYNC_SHAPE=qwen2.5-0.5b
fi
step "async-$ASYNC_SHAPE" 180 "$PY" benchmarks/async_vs_sync.py --device "$DEVICE" --eval-every 0 \
    "${ASYNC_RUN[@]}" --out "$SCRATCH/async"

log "done in $(($(date +%s) - START))s; summary:"
cat "$OUT/summary.md"
rm -rf "$SCRATCH"
