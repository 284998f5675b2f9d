#!/usr/bin/env bash
# After a failed e2e run (CI uploads the folder): the kind stack's state, events and logs.
#   tests/e2e/collect-logs.sh OUTPUT_DIR
# Writes, per namespace of the platform (and the fake GPU operator's, and kube-system): its
# objects, its events, `kubectl describe pods`, and every container's log (and the previous
# container's, after a restart): Airflow's components (their logs hold the task runners'),
# MLflow, the store, PostgreSQL, model servers. Also the nodes, the Helm releases, kind's node
# logs, and what the e2e tests kept (Airflow task logs of every run, the serving poller's log).
# Diagnostics only: a command that fails leaves its error in its file and the script goes on.
set -euo pipefail
SCRIPT=collect-logs
source "$(dirname "${BASH_SOURCE[0]}")/../../infra/kind/lib.sh"

out="${1:-}"
[[ -n "$out" ]] || die "usage: tests/e2e/collect-logs.sh OUTPUT_DIR"
need kubectl
facts
namespaces="$("$PY" "$KIND_PLATFORM" log-namespaces)" || exit 1
mkdir -p "$out"
log "collecting nodes, events and pod logs of: $namespaces (context $KIND_CONTEXT) into $out"

k() { bounded 120 kubectl --context "$KIND_CONTEXT" --request-timeout=60s "$@"; }

k get nodes -o wide >"$out/nodes.txt" 2>&1 || true
k describe nodes >"$out/nodes-describe.txt" 2>&1 || true
for ns in $namespaces; do
  dir="$out/$ns"
  mkdir -p "$dir"
  k -n "$ns" get all,configmaps,secrets,pvc,networkpolicies,resourcequotas,jobs -o wide \
    >"$dir/objects.txt" 2>&1 || true
  k -n "$ns" get events --sort-by=.lastTimestamp >"$dir/events.txt" 2>&1 || true
  k -n "$ns" describe pods >"$dir/pods-describe.txt" 2>&1 || true
  pods="$(k -n "$ns" get pods -o name 2>/dev/null || true)"
  for pod in $pods; do
    name="${pod#pod/}"
    k -n "$ns" logs "$name" --all-containers --prefix --timestamps >"$dir/$name.log" 2>&1 || true
    k -n "$ns" logs "$name" --all-containers --prefix --timestamps --previous \
      >"$dir/$name.previous.log" 2>/dev/null || rm -f "$dir/$name.previous.log"
  done
done

if command -v helm >/dev/null 2>&1; then
  bounded 120 helm --kube-context "$KIND_CONTEXT" list --all-namespaces --all \
    >"$out/helm-releases.txt" 2>&1 || true
fi
if command -v kind >/dev/null 2>&1; then
  bounded 300 kind export logs "$out/kind-nodes" --name "$KIND_CLUSTER_NAME" \
    >"$out/kind-export.txt" 2>&1 || true
fi
if [[ -d "$E2E_ARTIFACTS_DIR" ]]; then
  cp -R "$E2E_ARTIFACTS_DIR" "$out/e2e-artifacts"
fi
log "done: $(find "$out" -type f | wc -l | xargs) files in $out"
