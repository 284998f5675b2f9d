#!/usr/bin/env bash
# make kind-down: delete the kind cluster, and the kind stack's local Pulumi state with it (the
# state described the deleted cluster; the next `make deploy ENV=kind` starts afresh).
set -euo pipefail
SCRIPT=kind-down
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need docker kind
facts
# Without an engine `kind get clusters` sees nothing: the state must not be dropped then.
docker_engine_up

if cluster_exists; then
  log "deleting kind cluster $KIND_CLUSTER_NAME (under a minute)"
  bounded 300 kind delete cluster --name "$KIND_CLUSTER_NAME"
else
  log "no kind cluster $KIND_CLUSTER_NAME: nothing to delete"
fi
if [[ -d "$KIND_STATE_DIR" ]]; then
  log "removing ${KIND_STATE_DIR#"$REPO_ROOT"/} (the kind stack's Pulumi state, passphrase and e2e artifacts)"
  rm -rf -- "$KIND_STATE_DIR"
fi
log "done"
