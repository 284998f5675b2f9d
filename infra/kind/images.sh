#!/usr/bin/env bash
# make images: build every platform image under the reference the kind platform document gives
# it (what the DAGs' pods run), as a CPU image (kind has no GPU: the build args are the CPU
# image's own defaults, see kind_platform.cpu_build_args), then every team image
# (dags/teams/<team>/images/<name>/) FROM the trainer image just built (build arg
# TRAINER_BASE), and load each into the kind nodes of the stack's pools. Idempotent: Docker's
# cache makes a rebuild quick, and kind skips nodes that already hold the same image.
#   infra/kind/images.sh           build and load
#   infra/kind/images.sh --print   print the commands instead of running them (no Docker needed)
set -euo pipefail
SCRIPT=images
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

print_only=false
case "${1:-}" in
  "") ;;
  --print) print_only=true ;;
  *) die "unknown argument '$1' (usage: infra/kind/images.sh [--print])" ;;
esac

facts
# One line per image, in build order: name, reference, build context, then its build args.
listing="$("$PY" "$KIND_PLATFORM" images)" || exit 1

# run SECONDS COMMAND...: run it (bounded), or print it with --print.
run() {
  local seconds="$1"
  shift
  if $print_only; then
    printf '%q ' "$@" | sed 's/ $//'
    echo
  else
    bounded "$seconds" "$@" </dev/null
  fi
}

if ! $print_only; then
  need docker kind
  docker_engine_up
  cluster_exists || die "kind cluster $KIND_CLUSTER_NAME is not up: make kind-up first"
fi

while read -r image ref context rest; do
  read -r -a build_args <<<"$rest"
  arg_flags=()
  for arg in "${build_args[@]}"; do
    case "$arg" in
      +*) arg_flags+=(--build-context "${arg#+}") ;;  # a named context (COPY --from=<name>)
      *) arg_flags+=(--build-arg "$arg") ;;
    esac
  done
  log "building $image as $ref from $context with ${build_args[*]} (first build: 5-15 minutes)"
  run 3600 docker build "${arg_flags[@]}" --tag "$ref" "$context"
  log "loading $ref into $KIND_POOL_NODES of cluster $KIND_CLUSTER_NAME (about a minute per image)"
  run 900 kind load docker-image "$ref" --name "$KIND_CLUSTER_NAME" --nodes "${KIND_POOL_NODES// /,}"
done <<<"$listing"
if $print_only; then
  log "printed the commands only: nothing built or loaded"
else
  log "images ready; next: make deploy ENV=$KIND_STACK"
fi
