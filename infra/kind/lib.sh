# Shared by the kind path's scripts (infra/kind/*.sh, infra/deploy.sh, tests/e2e/*.sh):
# sourced after `set -euo pipefail` and SCRIPT=<name>; not run on its own.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="$REPO_ROOT/.venv/bin/python"
KIND_PLATFORM="$REPO_ROOT/infra/kind/kind_platform.py"
cd "$REPO_ROOT"

# What the script does, one line at a time, with the time (long steps say how long they take).
log() { printf '%s [%s] %s\n' "$(date -u +%H:%M:%S)" "${SCRIPT:-kind}" "$*"; }

# One line on stderr, then exit 1.
die() {
  printf '%s: %s\n' "${SCRIPT:-kind}" "$*" >&2
  exit 1
}

# Fails with one line naming every tool of "$@" that is not on PATH.
need() {
  local missing=() tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    die "not installed (not on PATH): ${missing[*]} (see docs/kind.md)"
  fi
}

# bounded SECONDS COMMAND...: run COMMAND, killed after SECONDS (coreutils timeout).
bounded() {
  local seconds="$1" rc=0 limiter
  shift
  limiter="$(command -v timeout || command -v gtimeout || true)"
  [[ -n "$limiter" ]] || die "not installed (not on PATH): timeout (GNU coreutils)"
  "$limiter" "$seconds" "$@" || rc=$?
  if ((rc == 124)); then
    die "gave up after ${seconds}s: $*"
  fi
  return "$rc"
}

# The names the kind stack and the kind platform document define (infra/kind/kind_platform.py).
facts() {
  [[ -x "$PY" ]] || die "no $PY: run make setup"
  local assignments
  assignments="$("$PY" "$KIND_PLATFORM" shell)" || exit 1
  eval "$assignments"
}

docker_engine_up() {
  bounded 60 docker info --format '{{.ServerVersion}}' >/dev/null 2>&1 ||
    die "docker: no engine answers (docker info failed); start Docker"
}

cluster_exists() {
  local clusters
  clusters="$(bounded 60 kind get clusters 2>/dev/null)" || die "kind get clusters failed"
  grep -qx -- "$KIND_CLUSTER_NAME" <<<"$clusters"
}
