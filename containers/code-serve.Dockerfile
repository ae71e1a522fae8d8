# Code envs as a service: `palaestra serve` (the OpenEnv protocol, docs/serving.md) as the entry point,
# each client session's programs run in bubblewrap inside this container (palaestra.sandbox's local
# backend). The sandbox image (sandbox.Dockerfile) stays what it is, python3 and nothing else: it runs
# untrusted programs and holds no palaestra.
#   docker build -f containers/code-serve.Dockerfile -t palaestra-code-serve .
#   docker run --rm -p 8765:8765 --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
#       palaestra-code-serve                                    # the default envs below
#   docker run --rm -p 8765:8765 --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
#       palaestra-code-serve palaestra/Code-Repair-v0 --max-sessions 64 --idle-timeout 120
# (bubblewrap needs unprivileged user namespaces, which Docker's default seccomp and AppArmor
# profiles refuse; nothing else is loosened.)
#
# Debian 12 slim with Python 3.11, pinned to a dated tag (as browser.Dockerfile).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

# bubblewrap: the local sandbox backend's namespaces
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /opt/palaestra

# torch pinned as the Makefile pins it, from PyTorch's CPU index (an env server does not train)
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX}" torch==2.13.0
COPY pyproject.toml README.md ./
COPY palaestra ./palaestra
# the package as the README installs it, with openenv-core (this checkout: hadolint's pin rule does
# not apply); the server runs as an unprivileged user
# hadolint ignore=DL3013
RUN pip install ".[serve]" \
    && groupadd --gid 10003 envs \
    && useradd --uid 10003 --gid 10003 --create-home --shell /usr/sbin/nologin envs
USER 10003:10003
EXPOSE 8765
ENTRYPOINT ["palaestra", "serve", "--host", "0.0.0.0", "--port", "8765"]
CMD ["palaestra/Code-Bundled-v0", "palaestra/Code-Repair-v0", "palaestra/Code-PythonMath-v0"]
