#!/usr/bin/env bash
# make kind-up: create the kind cluster of the `kind` stack (infra/kind/cluster.yaml) unless it
# exists, then check that it is the cluster the stack expects: its nodes, and this checkout
# mounted where Airflow reads the DAGs.
set -euo pipefail
SCRIPT=kind-up
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need docker kind
facts
docker_engine_up

if cluster_exists; then
  log "kind cluster $KIND_CLUSTER_NAME exists: not creating it"
else
  log "creating kind cluster $KIND_CLUSTER_NAME from ${KIND_CONFIG#"$REPO_ROOT"/}" \
    "(nodes: $KIND_NODES; 1-3 minutes, longer when the node image is pulled first)"
  # From the repository root: the config's relative hostPath is resolved against it.
  bounded 900 kind create cluster --name "$KIND_CLUSTER_NAME" --config "$KIND_CONFIG" --wait 5m
fi

actual="$(bounded 60 kind get nodes --name "$KIND_CLUSTER_NAME" | sort | xargs)"
expected="$(printf '%s\n' $KIND_NODES | sort | xargs)"
[[ "$actual" == "$expected" ]] ||
  die "cluster $KIND_CLUSTER_NAME has nodes '$actual' but the kind stack expects '$expected': make kind-down, then make kind-up"

for node in $KIND_NODES; do
  bounded 60 docker exec "$node" cat "$KIND_CHECKOUT_PATH/${KIND_CONFIG#"$REPO_ROOT"/}" 2>/dev/null |
    cmp -s - "$KIND_CONFIG" ||
    die "node $node does not mount this checkout at $KIND_CHECKOUT_PATH (the cluster was created from another directory): make kind-down, then make kind-up"
done
log "every node mounts this checkout read-only at $KIND_CHECKOUT_PATH"

log "writing kubeconfig context $KIND_CONTEXT (and making it the current context)"
bounded 60 kind export kubeconfig --name "$KIND_CLUSTER_NAME" >/dev/null
log "kind cluster $KIND_CLUSTER_NAME is up; next: make images"
