#!/usr/bin/env bash
# Start a private Docker Engine and build the sandbox image `palaestra-sandbox:test` (idempotent).
#
#   bash scripts/sandbox-engine.sh          # prints the engine URL on its last line (stdout)
#   export PALAESTRA_DOCKER_HOST=unix:///run/palaestra-docker.sock
#
# For machines with no Docker service and no registry access (CI here): it
#   1. installs docker.io and debootstrap with apt-get if they are missing (needs root),
#   2. starts dockerd by hand in the background on its own socket, data root, pid and log files,
#      without iptables or a bridge (sandbox containers use network_mode=none), and waits for it,
#   3. builds a bookworm base with `debootstrap --variant=minbase --include=python3` (the
#      tarball is cached under ~/.cache/palaestra/, so reruns skip it) and `docker import`s it,
#   4. builds palaestra-sandbox:test from containers/sandbox.Dockerfile on top of that base.
# A second run finds each step done and returns in about a second. Stop the engine with
#   kill "$(cat /run/palaestra-docker/dockerd.pid)"
#
# Settings (environment): PALAESTRA_DOCKER_SOCK (socket path), PALAESTRA_DOCKER_ROOT (data root),
# PALAESTRA_CACHE (tarball cache), SANDBOX_IMAGE (tag to build). Progress and timings go to stderr.
set -euo pipefail

SOCK=${PALAESTRA_DOCKER_SOCK:-/run/palaestra-docker.sock}
DATA_ROOT=${PALAESTRA_DOCKER_ROOT:-/var/lib/palaestra-docker}
RUN_DIR=/run/palaestra-docker
CACHE=${PALAESTRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/palaestra}
IMAGE=${SANDBOX_IMAGE:-palaestra-sandbox:test}
BASE_IMAGE=palaestra-sandbox-base:bookworm
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
REPO=$(cd "$(dirname "$0")/.." && pwd)

log() { echo "sandbox-engine: $*" >&2; }
step_start() { STEP_T0=$(date +%s.%N); }
step_done() { log "$1 ($(awk -v a="$STEP_T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f s", b-a}'))"; }

if [ "$(id -u)" != 0 ]; then
  log "must run as root (it installs packages and starts dockerd)"
  exit 1
fi

# -- 1. packages --------------------------------------------------------------------------------
step_start
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # --no-install-recommends: no apparmor, no cgroupfs-mount service, no git
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
# Debian's CLI, not a stray one elsewhere on PATH
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker)
docker_() { "$DOCKER" -H "unix://$SOCK" "$@"; }
step_done "packages"

# -- 2. the engine -----------------------------------------------------------------------------
step_start
mkdir -p "$RUN_DIR" "$DATA_ROOT"
if ! docker_ info >/dev/null 2>&1; then
  if [ -f "$RUN_DIR/dockerd.pid" ] && kill -0 "$(cat "$RUN_DIR/dockerd.pid")" 2>/dev/null; then
    log "dockerd (pid $(cat "$RUN_DIR/dockerd.pid")) is running but not answering yet; waiting"
  else
    rm -f "$SOCK" "$RUN_DIR/dockerd.pid"
    log "starting dockerd on unix://$SOCK (log: $RUN_DIR/dockerd.log)"
    # setsid + nohup: the daemon outlives this script and its session; its own containerd is
    # started by dockerd under --exec-root
    setsid nohup dockerd \
      --data-root "$DATA_ROOT" \
      --exec-root "$RUN_DIR/exec" \
      --pidfile "$RUN_DIR/dockerd.pid" \
      -H "unix://$SOCK" \
      --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
      --bridge=none \
      --log-level=warn \
      </dev/null >>"$RUN_DIR/dockerd.log" 2>&1 &
  fi
  for _ in $(seq 1 300); do
    docker_ info >/dev/null 2>&1 && break
    sleep 0.2
  done
  if ! docker_ info >/dev/null 2>&1; then
    log "dockerd did not answer within 60 s; its log ends with:"
    tail -n 20 "$RUN_DIR/dockerd.log" >&2
    exit 1
  fi
fi
step_done "engine up (storage driver: $(docker_ info -f '{{.Driver}}'))"

# -- 3. the base image -------------------------------------------------------------------------
step_start
TARBALL="$CACHE/debootstrap-$SUITE-minbase-python3.tar"
if ! docker_ image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  if [ ! -s "$TARBALL" ]; then
    mkdir -p "$CACHE"
    rootfs=$(mktemp -d /var/tmp/palaestra-rootfs.XXXXXX)
    log "debootstrap $SUITE into $rootfs (a minute or so; cached as $TARBALL)"
    debootstrap --variant=minbase --include=python3 "$SUITE" "$rootfs" "$MIRROR" >&2
    # no package lists or caches in the image
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$rootfs"
  fi
  docker_ import "$TARBALL" "$BASE_IMAGE" >/dev/null
fi
step_done "base image $BASE_IMAGE"

# -- 4. the sandbox image ----------------------------------------------------------------------
step_start
# the build is cached by the engine: a rerun with an unchanged Dockerfile takes a fraction of a second
DOCKER_BUILDKIT=0 docker_ build -q --build-arg "BASE=$BASE_IMAGE" -t "$IMAGE" \
  -f "$REPO/containers/sandbox.Dockerfile" "$REPO/containers" >/dev/null
step_done "sandbox image $IMAGE"

echo "unix://$SOCK"
