# Web envs as a service or worker image: Playwright (python) driving Debian's chromium package, which
# the web envs launch with executable_path=/usr/bin/chromium (no browser download at build or run time).
#   docker build -f containers/browser.Dockerfile -t palaestra-browser .
#   docker run --rm --shm-size=1g palaestra-browser                       # lists the web envs
#   docker run --rm --shm-size=1g palaestra-browser palaestra eval --env palaestra/Web-Login-v0 --agent scripted:oracle
# As an env server (the OpenEnv protocol, docs/serving.md): one browser, a context per client session
#   docker run --rm --shm-size=2g -p 8765:8765 palaestra-browser \
#       palaestra serve palaestra/Web-Login-v0 palaestra/Web-ClickButton-v0 --host 0.0.0.0 --max-sessions 32
# As a Ray worker for env actors: `ray start --address=HEAD:6379` inside it (same Ray as the trainer image).
#
# Debian 12 slim with Python 3.11, pinned to a dated tag (as sandbox.Dockerfile).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

# chromium and fonts for rendered pages; no Playwright browser download
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-liberation fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
WORKDIR /opt/palaestra

# torch pinned as the Makefile pins it, from PyTorch's CPU index by default (browser workers do not
# train: no CUDA libraries); --build-arg TORCH_INDEX=https://pypi.org/simple for PyPI's build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX}" torch==2.13.0
COPY pyproject.toml README.md ./
COPY palaestra ./palaestra
# the package as the README installs it (this checkout: hadolint's pin rule does not apply), with
# Playwright, Ray (to join a cluster as a worker) and openenv-core (`palaestra serve`); Chromium runs
# as an unprivileged user (the web envs pass the flags it needs in a container)
ARG RAY_VERSION=2.60.0
# hadolint ignore=DL3013
RUN pip install ".[web,ray,serve]" "playwright==1.65.2" "ray==${RAY_VERSION}" \
    && groupadd --gid 10002 browser \
    && useradd --uid 10002 --gid 10002 --create-home --shell /usr/sbin/nologin browser
USER 10002:10002
# palaestra serve's default port
EXPOSE 8765
CMD ["palaestra", "envs", "list", "--family", "Web"]
