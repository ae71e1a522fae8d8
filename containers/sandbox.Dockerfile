# The code sandbox: Debian's python3 and a non-root user, nothing else; used by the docker/podman
# backend of palaestra.sandbox (palaestra/sandbox/docker.py), which runs it with no network, a
# read-only root, tmpfs /work and /tmp, all capabilities dropped and pids/memory/cpu limits.
#   docker build -f containers/sandbox.Dockerfile -t palaestra-sandbox:latest containers/
# Without registry access, build on a local base that already has python3 (the apt step is skipped):
#   bash scripts/sandbox-engine.sh   (debootstrap + docker import, then this file as palaestra-sandbox:test)
#
# Debian 12 slim, pinned to a dated tag (the snapshot the project's machines run); to pin the
# digest as well: --build-arg BASE=debian:bookworm-20250520-slim@sha256:<digest>, the digest from
# `docker buildx imagetools inspect debian:bookworm-20250520-slim` (not recorded here: no registry
# access where this file was written)
ARG BASE=debian:bookworm-20250520-slim
FROM ${BASE}

# python3 with its standard library, nothing else (no pip, no compilers, no tools beyond the base's).
# Not python3-minimal: it lacks json, ctypes, resource, shutil, which programs (and the attack
# tests) import. Skipped when the base already has python3 (the debootstrap base of
# scripts/sandbox-engine.sh, built offline).
RUN command -v python3 >/dev/null \
    || (apt-get update \
        && apt-get install -y --no-install-recommends python3 \
        && rm -rf /var/lib/apt/lists/*)

# uid/gid 10001: a fixed non-root id, no login shell, no password, home = the work dir
RUN groupadd --gid 10001 sandbox \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /work --shell /usr/sbin/nologin sandbox \
    && mkdir -p /work && chown sandbox:sandbox /work && chmod 0700 /work

ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PATH=/usr/local/bin:/usr/bin:/bin
USER 10001:10001
WORKDIR /work
CMD ["python3"]
